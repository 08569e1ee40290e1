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
import { BkError, failedPrecondition, invalidArgument, isNotFound, resourceExhausted } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { isDigest } from '../../oci/digest.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, detectManifestMediaType } from '../../oci/manifest.js';
import { isIndexMediaType, isManifestMediaType, MT } from '../../oci/media-types.js';
import { validateTag } from '../../oci/reference.js';
import { fetchBytes } from '../../store/content.js';
import { updateIndex } from '../../store/local/layout.js';
import { LocalStore } from '../../store/local/index.js';
import type { PruneResult } from '../../store/local/prune.js';
import { RegistryStore } from '../../store/registry/index.js';
import { loadParsed } from '../import.js';
import { openImport, type BackendContext } from '../remote/index.js';
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
  reason?: 'keep-glob' | 'recent' | 'not-a-cache' | 'unreadable' | 'shares-manifest' | 'named-by-kept-index' | 'no-dates' | 'invalid-tag';
}

export interface GcReport {
  deleted: GcTag[];
  kept: GcTag[];
  dryRun: boolean;
  /** What the store must do next to free space. */
  note: string;
  prune?: PruneResult;
  /** Local layouts: why prune refused to run after the entries were removed. */
  pruneRefused?: string;
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

/** A tag and what it names; no descriptor for a name the registry listed that is not a tag (it cannot be resolved, and stays). */
interface Entry {
  tag: string;
  desc?: Descriptor;
}

function isTag(name: string): boolean {
  try {
    validateTag(name);
    return !isDigest(name);
  } catch {
    return false;
  }
}

interface Repo {
  store: RegistryStore | LocalStore;
  list(signal?: AbortSignal): Promise<Entry[]>;
  remove(victims: GcTag[], signal?: AbortSignal): Promise<void>;
  note: string;
  close(): Promise<void>;
}

async function openRepo(spec: CacheSpec, ctx: BackendContext): Promise<Repo> {
  if (spec.type === 'registry') {
    const target = await openImport(spec, ctx);
    const store = target.store as RegistryStore;
    return {
      store,
      async list(signal) {
        const out: Entry[] = [];
        // Each name once (listTags); a lying registry may list names no tag can have (resolving one would ask for something else).
        for (const tag of await store.tags({ signal })) {
          if (!isTag(tag)) {
            out.push({ tag });
            continue;
          }
          try {
            out.push({ tag, desc: await store.resolve(tag, { signal }) });
          } catch (err) {
            if (!isNotFound(err)) throw err; // deleted meanwhile
          }
        }
        return out;
      },
      async remove(victims, signal) {
        for (const digest of new Set(victims.map((v) => v.digest))) {
          const desc = (await store.resolve(digest, { signal }).catch((err) => {
            if (isNotFound(err)) return undefined;
            throw err;
          })) as Descriptor | undefined;
          // A manifest, whatever media type this HEAD reports: store.delete picks the
          // endpoint by media type, and DELETE /blobs/<digest> would leave the tags
          // naming the manifest while (on some registries) removing its bytes.
          if (desc) await store.delete({ ...desc, mediaType: isManifestMediaType(desc.mediaType) ? desc.mediaType : MT.ociManifest }, { signal });
        }
      },
      note:
        `the registry now holds blobs no manifest names; its own garbage collection frees them ` +
        `(distribution: \`registry garbage-collect --delete-untagged CONFIG\` with the registry read-only or stopped)`,
      close: () => store.close(),
    };
  }
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
    // A manifest a kept tag names is never deleted, whatever other tags name
    // it: neither the one a kept tag points at, nor one a kept index lists
    // (deleting it would leave the kept tag naming an index with a hole).
    const keptDigests = new Set(kept.map((k) => k.digest));
    const listed = expired.length ? await namedByIndexes(repo.store, entries, kept, docs, opts.signal) : new Set<string>();
    const deleted: GcTag[] = [];
    for (const t of expired) {
      if (keptDigests.has(t.digest)) kept.push({ ...t, reason: 'shares-manifest' });
      else if (listed.has(t.digest)) kept.push({ ...t, reason: 'named-by-kept-index' });
      else deleted.push(t);
    }
    const report: GcReport = { deleted, kept, dryRun: opts.dryRun === true, note: '' };
    if (!opts.dryRun && deleted.length) {
      try {
        await repo.remove(deleted, opts.signal);
      } catch (err) {
        if (err instanceof BkError && err.reason === 'delete-unsupported') {
          throw failedPrecondition(`${repo.store.location} does not allow deletes (distribution: storage.delete.enabled=true); nothing more was deleted`, {
            cause: err,
            reason: 'delete-unsupported',
          });
        }
        throw err;
      }
      report.note = repo.note;
      if (repo.store instanceof LocalStore) {
        try {
          report.prune = await repo.store.prune();
        } catch (err) {
          // The entries are gone already: a prune that refuses the layout (an
          // entry it cannot walk, see prune.ts) must not turn this into an
          // error that says nothing was deleted. Reported, the blobs stay.
          if (!(err instanceof BkError) || err.reason !== 'not-a-layout') throw err;
          report.note = `the entries were removed from index.json, but no blob was pruned: ${err.message}`;
          report.pruneRefused = err.message;
        }
      }
    }
    const byTag = (a: GcTag, b: GcTag) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
    report.deleted.sort(byTag);
    report.kept.sort(byTag);
    return report;
  } finally {
    await repo.close();
  }
}
