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
import { BkError, invalidArgument } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex } from '../../oci/manifest.js';
import { isManifestMediaType } from '../../oci/media-types.js';
import { fetchBytes } from '../../store/content.js';
import { updateIndex } from '../../store/local/layout.js';
import { LocalStore } from '../../store/local/index.js';
import type { PruneResult } from '../../store/local/prune.js';
import type { RegistryStore } from '../../store/registry/index.js';
import { loadParsed } from '../import.js';
import type { BackendContext } from '../remote/index.js';
import { openRegistryRepo } from './gc-registry.js';
import { IndexChildren, protect, recheck } from './gc-protect.js';
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

/**
 * Whether the cache `desc` names is expired: no reason (and its newest
 * record's time), or why it is kept. Keeps what the manifest lists that can
 * matter in `known`.
 */
async function judge(
  store: RegistryStore | LocalStore,
  desc: Descriptor,
  known: IndexChildren,
  cutoff: number | undefined,
  signal?: AbortSignal,
): Promise<Pick<GcTag, 'newest' | 'reason'>> {
  let loaded;
  let doc: unknown;
  try {
    doc = parseJsonBytes(await fetchBytes(store, desc, undefined, signal), `manifest ${desc.digest}`);
    known.add(desc.digest, doc);
    loaded = await loadParsed(store, desc, doc, { signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    const e = err instanceof BkError ? err : undefined;
    return { reason: e?.reason === 'uninferrable' ? 'not-a-cache' : 'unreadable' };
  }
  if (loaded.kind === 'inline' || (loaded.kind === 'index' && listsManifests(doc))) return { reason: 'not-a-cache' }; // an image: never ours to delete
  const newest = newestRecord(loaded.parts);
  const at = newest ? { newest } : {};
  if (cutoff !== undefined && !newest) return { reason: 'no-dates' };
  if (cutoff !== undefined && Date.parse(newest!) >= cutoff) return { ...at, reason: 'recent' };
  return at;
}

export async function gcRepository(spec: CacheSpec, ctx: BackendContext = {}, opts: GcOptions = {}): Promise<GcReport> {
  const globs = (opts.keep ?? []).map(globMatcher);
  const cutoff = opts.olderThan === undefined ? undefined : (opts.now ?? new Date()).getTime() - opts.olderThan;
  const repo = await openRepo(spec, ctx);
  try {
    const entries = await repo.list(opts.signal);
    const kept: GcTag[] = [];
    const expired: GcTag[] = [];
    const known = new IndexChildren(new Set(entries.flatMap((e) => (e.desc ? [e.desc.digest] : []))));
    // Each manifest judged once, however many tags name it (its cache config is read once).
    const verdicts = new Map<string, Pick<GcTag, 'newest' | 'reason'>>();
    for (const { tag, desc } of entries) {
      if (!desc) {
        kept.push({ tag, digest: '', reason: 'invalid-tag' });
        continue;
      }
      if (globs.some((g) => g(tag))) {
        kept.push({ tag, digest: desc.digest, reason: 'keep-glob' });
        continue;
      }
      let verdict = verdicts.get(desc.digest);
      if (!verdict) verdicts.set(desc.digest, (verdict = await judge(repo.store, desc, known, cutoff, opts.signal)));
      const t: GcTag = { tag, digest: desc.digest, ...verdict };
      (t.reason ? kept : expired).push(t);
    }
    const first = await protect(repo.store, entries, kept, expired, known, opts.signal);
    kept.push(...first.spared);
    const report: GcReport = { deleted: first.victims, kept, failed: [], dryRun: opts.dryRun === true, note: '' };
    let error: BkError | undefined;
    if (!opts.dryRun && report.deleted.length) {
      // Judging read every cache's config: the repository may have changed since it was listed.
      const victims = repo.recheck ? await recheck(repo, report.deleted, known, opts.signal) : { victims: report.deleted, spared: [] };
      kept.push(...victims.spared);
      const out = victims.victims.length ? await repo.remove(victims.victims, opts.signal) : { deleted: [], failed: [], changed: [] };
      report.deleted = out.deleted;
      report.failed = out.failed;
      kept.push(...out.changed);
      error = out.error;
      if (out.deleted.length) report.note = repo.note;
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
    report.failed.sort(byTag);
    if (error) throw new GcIncompleteError(report, error);
    return report;
  } finally {
    await repo.close();
  }
}
