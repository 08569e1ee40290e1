// gc: retention for whole caches in a repository or a local layout. A tag is
// deleted when it names a BuildKit cache (index or image-manifest shape)
// whose newest record is older than `olderThan`, and no `keep` glob matches it.
// Never touched: tags a glob keeps, anything that is not such a cache (images,
// also those carrying inline cache, and manifests we cannot read), and any
// manifest a kept tag still names.
//
// Registry: distribution deletes manifests by digest only
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#deleting-manifests),
// which also removes the tags naming it; the blobs stay until the registry's
// own garbage collection runs. Local layout: the index.json entries go in one
// atomic replace, then unreachable blobs are pruned.
import { BkError, invalidArgument, resourceExhausted } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, detectManifestMediaType } from '../../oci/manifest.js';
import { isIndexMediaType, isManifestMediaType } from '../../oci/media-types.js';
import { fetchBytes } from '../../store/content.js';
import { updateIndex } from '../../store/local/layout.js';
import { LocalStore } from '../../store/local/index.js';
import type { PruneResult } from '../../store/local/prune.js';
import type { RegistryStore } from '../../store/registry/index.js';
import { loadParsed } from '../import.js';
import type { BackendContext } from '../remote/index.js';
import { openRegistryRepo } from './gc-registry.js';
import type { CacheSpec } from '../spec.js';

export interface GcOptions {
  /** Milliseconds; caches whose newest record is older are deleted. Undefined: every cache not kept. */
  olderThan?: number;
  /** Tag globs (`*` any run of characters, `?` one) that are never deleted. */
  keep?: string[];
  dryRun?: boolean;
  now?: Date;
  signal?: AbortSignal;
}

export interface GcTag {
  tag: string;
  digest: string;
  /** Newest record's creation time, for caches. */
  newest?: string;
  /** Why a tag is kept. */
  reason?:
    | 'keep-glob'
    | 'recent'
    | 'not-a-cache'
    | 'unreadable'
    | 'shares-manifest'
    | 'named-by-kept-index'
    | 'no-dates'
    | 'invalid-tag'
    /** It names another manifest than the one judged: re-pointed while gc ran. */
    | 'changed'
    /** Why a tag is in `failed`: its delete failed (or was not tried after a failure), or the registry accepted it and kept the tag. */
    | 'delete-failed'
    | 'delete-ignored';
}

export interface GcReport {
  /** Tags gone, checked after the deletes. */
  deleted: GcTag[];
  kept: GcTag[];
  /** Tags gc meant to delete and did not: a delete that failed, or one the registry accepted and ignored. */
  failed: GcTag[];
  dryRun: boolean;
  /** What the store must do next to free space. */
  note: string;
  prune?: PruneResult;
}

/**
 * A `--keep` glob as a matcher: `*` any run of characters, `?` one, all else
 * literal. Not a RegExp: `a*a*a*…b` against a long tag backtracks
 * exponentially there; this walk (one star remembered, as in shell
 * fnmatch) takes at most glob length × tag length steps.
 */
export function globMatcher(glob: string): (tag: string) => boolean {
  return (tag) => {
    let g = 0;
    let t = 0;
    let star = -1; // the last star seen, and where in the tag its run ends so far
    let mark = 0;
    while (t < tag.length) {
      const c = glob[g];
      if (g < glob.length && c !== '*' && (c === '?' || c === tag[t])) {
        g++;
        t++;
      } else if (c === '*') {
        star = g++;
        mark = t;
      } else if (star >= 0) {
        g = star + 1;
        t = ++mark;
      } else return false;
    }
    while (glob[g] === '*') g++;
    return g === glob.length;
  };
}

/** The newest result time of a cache, or undefined when no record carries one. */
function newestRecord(parts: { config: { records: { results: { createdAt: string }[]; chains: { createdAt: string }[] }[] } }[]): string | undefined {
  let best: string | undefined;
  let bestMs = -Infinity;
  for (const part of parts) {
    for (const r of part.config.records) {
      for (const x of [...r.results, ...r.chains]) {
        const t = Date.parse(x.createdAt);
        if (Number.isNaN(t) || t <= Date.parse('0001-01-02T00:00:00Z')) continue;
        if (t > bestMs) {
          bestMs = t;
          best = x.createdAt;
        }
      }
    }
  }
  return best;
}

/**
 * A gc whose deletes did not all happen: the report says what was deleted
 * and what was not, the code and reason are those of the first failure.
 */
export class GcIncompleteError extends BkError {
  constructor(
    readonly report: GcReport,
    cause: BkError,
  ) {
    // The counts first: a one-line error shows only the first line of the cause.
    super(cause.code, `gc deleted ${report.deleted.length}, not deleted ${report.failed.length}: ${cause.message}`, { cause, reason: cause.reason });
  }
}

/** A tag and what it names; no descriptor for a name the registry listed that is not a tag (it cannot be resolved, and stays). */
export interface Entry {
  tag: string;
  desc?: Descriptor;
}

/** What a store's deletes did. */
export interface RemoveOutcome {
  deleted: GcTag[];
  failed: GcTag[];
  /** Tags found naming another manifest after the delete (pushed meanwhile): kept. */
  changed: GcTag[];
  /** The first failure; the deletes stop there. */
  error?: BkError;
}

export interface Repo {
  store: RegistryStore | LocalStore;
  list(signal?: AbortSignal): Promise<Entry[]>;
  remove(victims: GcTag[], signal?: AbortSignal): Promise<RemoveOutcome>;
  /** Whether the tags must be listed again right before the deletes (a delete there removes every tag naming the manifest). */
  recheck?: boolean;
  note: string;
  close(): Promise<void>;
}

async function openRepo(spec: CacheSpec, ctx: BackendContext): Promise<Repo> {
  if (spec.type === 'registry') return openRegistryRepo(spec, ctx);
  if (spec.type === 'local') {
    const dir = spec.attrs['src'] ?? spec.attrs['dest'];
    if (!dir) throw invalidArgument('gc of a local layout needs type=local,src=DIR', { reason: 'invalid-spec' });
    const store = new LocalStore(dir);
    return {
      store,
      async list() {
        // index.json may hold one entry twice: judge (and report) it once.
        const seen = new Set<string>();
        return (await store.tags()).filter((e) => !seen.has(`${e.tag}\0${e.desc.digest}`) && !!seen.add(`${e.tag}\0${e.desc.digest}`));
      },
      async remove(victims) {
        // Entries by tag and digest: index.json may give one tag two entries, both judged.
        const gone = new Set(victims.map((v) => `${v.tag}\0${v.digest}`));
        // Under the index lock: an entry retagged since it was judged stays.
        await updateIndex(store.dir, (idx) => ({
          ...idx,
          manifests: idx.manifests.filter((m) => {
            const tag = m.annotations?.[ANNOTATION_REF_NAME];
            return tag === undefined || !gone.has(`${tag}\0${m.digest}`);
          }),
        }));
        return { deleted: victims, failed: [], changed: [] };
      },
      note: 'unreachable blobs were pruned',
      close: async () => {},
    };
  }
  throw invalidArgument(`gc supports type=registry and type=local repositories, not type=${spec.type}`, { reason: 'invalid-spec' });
}

/**
 * Whether an index lists manifests. BuildKit's cache index lists only its
 * config and layers; one that also lists images (an image index someone
 * added a cache config to) is an image, and deleting it would delete them.
 */
function listsManifests(doc: unknown): boolean {
  return decodeIndex(doc).manifests.some((m) => isManifestMediaType(m.mediaType));
}

/** Index reads a gc may make to find what kept indexes name; past it, gc refuses rather than guess. */
const MAX_INDEX_READS = 10_000;

/**
 * Every manifest digest the kept tags' indexes list, nested indexes
 * followed (each read once, at most MAX_INDEX_READS). A kept index that
 * cannot be read names nothing we could protect; an outage fails the gc
 * before anything is deleted.
 */
async function namedByIndexes(
  store: RegistryStore | LocalStore,
  entries: Entry[],
  kept: GcTag[],
  docs: Map<string, unknown>,
  signal?: AbortSignal,
): Promise<Set<string>> {
  const descs = new Map<string, Descriptor>();
  for (const e of entries) if (e.desc) descs.set(e.desc.digest, e.desc);
  const named = new Set<string>();
  const seen = new Set<string>();
  const todo: Descriptor[] = [];
  for (const k of kept) {
    const d = descs.get(k.digest);
    // What the registry says a manifest is decides whether it is read: only an index lists manifests.
    if (d && !seen.has(d.digest) && (docs.has(d.digest) || !d.mediaType || isIndexMediaType(d.mediaType))) {
      seen.add(d.digest);
      todo.push(d);
    }
  }
  let reads = 0;
  while (todo.length) {
    const d = todo.pop()!;
    let doc = docs.get(d.digest);
    if (doc === undefined) {
      if (++reads > MAX_INDEX_READS) {
        throw resourceExhausted(`the kept tags name more than ${MAX_INDEX_READS} indexes; nothing was deleted`, { reason: 'too-many-indexes' });
      }
      try {
        doc = parseJsonBytes(await fetchBytes(store, d, undefined, signal), `manifest ${d.digest}`);
      } catch (err) {
        if (signal?.aborted || !(err instanceof BkError) || !['NOT_FOUND', 'DATA_LOSS', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED'].includes(err.code)) throw err;
        continue;
      }
    }
    if (!isIndexMediaType(detectManifestMediaType(doc))) continue;
    let children: Descriptor[];
    try {
      children = decodeIndex(doc).manifests;
    } catch {
      continue; // a malformed index names nothing we can read
    }
    for (const c of children) {
      named.add(c.digest);
      // Only nested indexes can name more manifests (a cache index lists its layers here: those are not read).
      if (isIndexMediaType(c.mediaType) && !seen.has(c.digest)) {
        seen.add(c.digest);
        todo.push(c);
      }
    }
  }
  return named;
}

/**
 * Splits expired tags into those to delete and those to keep. A manifest a
 * kept tag names is never deleted, whatever other tags name it: neither the
 * one a kept tag points at, nor one a kept index lists (deleting it would
 * leave the kept tag naming an index with a hole).
 */
async function protect(
  store: RegistryStore | LocalStore,
  entries: Entry[],
  kept: GcTag[],
  expired: GcTag[],
  docs: Map<string, unknown>,
  signal?: AbortSignal,
): Promise<{ victims: GcTag[]; spared: GcTag[] }> {
  const keptDigests = new Set(kept.map((k) => k.digest));
  const listed = expired.length ? await namedByIndexes(store, entries, kept, docs, signal) : new Set<string>();
  const victims: GcTag[] = [];
  const spared: GcTag[] = [];
  for (const t of expired) {
    if (keptDigests.has(t.digest)) spared.push({ ...t, reason: 'shares-manifest' });
    else if (listed.has(t.digest)) spared.push({ ...t, reason: 'named-by-kept-index' });
    else victims.push(t);
  }
  return { victims, spared };
}

/**
 * The tags listed again right before the deletes, and the victims judged
 * once more against them: a victim tag re-pointed meanwhile is kept
 * (`changed`), and any tag that is not a victim now (a kept tag re-pointed
 * at an expired manifest, a tag pushed since) protects what it names, as
 * kept tags do. A victim tag gone meanwhile was deleted by someone else:
 * neither deleted by gc nor kept. What changes between this listing and a
 * DELETE is not seen: the registry API has no conditional delete.
 */
async function recheck(repo: Repo, victims: GcTag[], docs: Map<string, unknown>, signal?: AbortSignal): Promise<{ victims: GcTag[]; spared: GcTag[] }> {
  const now = await repo.list(signal);
  const names = new Map<string, string>();
  for (const e of now) if (e.desc) names.set(e.tag, e.desc.digest);
  const still: GcTag[] = [];
  const changed: GcTag[] = [];
  for (const v of victims) {
    const d = names.get(v.tag);
    if (d === v.digest) still.push(v);
    else if (d !== undefined) changed.push({ tag: v.tag, digest: d, reason: 'changed' });
  }
  const judged = new Set(still.map((v) => `${v.tag}\0${v.digest}`));
  const protectors: GcTag[] = [];
  for (const e of now) if (e.desc && !judged.has(`${e.tag}\0${e.desc.digest}`)) protectors.push({ tag: e.tag, digest: e.desc.digest });
  const r = await protect(repo.store, now, protectors, still, docs, signal);
  return { victims: r.victims, spared: [...changed, ...r.spared] };
}

export async function gcRepository(spec: CacheSpec, ctx: BackendContext = {}, opts: GcOptions = {}): Promise<GcReport> {
  const globs = (opts.keep ?? []).map(globMatcher);
  const cutoff = opts.olderThan === undefined ? undefined : (opts.now ?? new Date()).getTime() - opts.olderThan;
  const repo = await openRepo(spec, ctx);
  try {
    const entries = await repo.list(opts.signal);
    const kept: GcTag[] = [];
    const expired: GcTag[] = [];
    // Parsed manifests by digest, so finding what kept indexes name reads nothing twice.
    const docs = new Map<string, unknown>();
    for (const { tag, desc } of entries) {
      if (!desc) {
        kept.push({ tag, digest: '', reason: 'invalid-tag' });
        continue;
      }
      const t: GcTag = { tag, digest: desc.digest };
      if (globs.some((g) => g(tag))) {
        kept.push({ ...t, reason: 'keep-glob' });
        continue;
      }
      let loaded;
      let doc: unknown;
      try {
        doc = docs.get(desc.digest) ?? parseJsonBytes(await fetchBytes(repo.store, desc, undefined, opts.signal), `manifest ${desc.digest}`);
        docs.set(desc.digest, doc);
        loaded = await loadParsed(repo.store, desc, doc, { signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        const e = err instanceof BkError ? err : undefined;
        kept.push({ ...t, reason: e?.reason === 'uninferrable' ? 'not-a-cache' : 'unreadable' });
        continue;
      }
      if (loaded.kind === 'inline' || (loaded.kind === 'index' && listsManifests(doc))) {
        kept.push({ ...t, reason: 'not-a-cache' }); // an image: never ours to delete
        continue;
      }
      const newest = newestRecord(loaded.parts);
      if (newest) t.newest = newest;
      if (cutoff !== undefined && !newest) kept.push({ ...t, reason: 'no-dates' });
      else if (cutoff !== undefined && Date.parse(newest!) >= cutoff) kept.push({ ...t, reason: 'recent' });
      else expired.push(t);
    }
    const first = await protect(repo.store, entries, kept, expired, docs, opts.signal);
    kept.push(...first.spared);
    const report: GcReport = { deleted: first.victims, kept, failed: [], dryRun: opts.dryRun === true, note: '' };
    let error: BkError | undefined;
    if (!opts.dryRun && report.deleted.length) {
      // Judging read every cache's config: the repository may have changed since it was listed.
      const victims = repo.recheck ? await recheck(repo, report.deleted, docs, opts.signal) : { victims: report.deleted, spared: [] };
      kept.push(...victims.spared);
      const out = victims.victims.length ? await repo.remove(victims.victims, opts.signal) : { deleted: [], failed: [], changed: [] };
      report.deleted = out.deleted;
      report.failed = out.failed;
      kept.push(...out.changed);
      error = out.error;
      if (repo.store instanceof LocalStore) report.prune = await repo.store.prune();
      if (out.deleted.length) report.note = repo.note;
    }
    const byTag = (a: GcTag, b: GcTag) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
    report.deleted.sort(byTag);
    report.kept.sort(byTag);
    report.failed.sort(byTag);
    if (error) throw new GcIncompleteError(report, error);
    return report;
  } finally {
    await repo.close();
  }
}
