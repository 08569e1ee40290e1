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
import { BkError, failedPrecondition, invalidArgument } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { updateIndex } from '../../store/local/layout.js';
import { LocalStore } from '../../store/local/index.js';
import type { PruneResult } from '../../store/local/prune.js';
import { RegistryStore } from '../../store/registry/index.js';
import { loadCache } from '../import.js';
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
  reason?: 'keep-glob' | 'recent' | 'not-a-cache' | 'unreadable' | 'shares-manifest' | 'no-dates';
}

export interface GcReport {
  deleted: GcTag[];
  kept: GcTag[];
  dryRun: boolean;
  /** What the store must do next to free space. */
  note: string;
  prune?: PruneResult;
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
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

interface Repo {
  store: RegistryStore | LocalStore;
  list(signal?: AbortSignal): Promise<{ tag: string; desc: Descriptor }[]>;
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
        const out: { tag: string; desc: Descriptor }[] = [];
        for (const tag of await store.tags({ signal })) {
          try {
            out.push({ tag, desc: await store.resolve(tag, { signal }) });
          } catch (err) {
            if (!(err instanceof BkError && err.code === 'NOT_FOUND')) throw err; // deleted meanwhile
          }
        }
        return out;
      },
      async remove(victims, signal) {
        for (const digest of new Set(victims.map((v) => v.digest))) {
          const desc = (await store.resolve(digest, { signal }).catch((err) => {
            if (err instanceof BkError && err.code === 'NOT_FOUND') return undefined;
            throw err;
          })) as Descriptor | undefined;
          if (desc) await store.delete(desc, { signal });
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
      list: () => store.tags(),
      async remove(victims) {
        const byTag = new Map(victims.map((v) => [v.tag, v.digest]));
        // Under the index lock: an entry retagged since it was judged stays.
        await updateIndex(store.dir, (idx) => ({
          ...idx,
          manifests: idx.manifests.filter((m) => {
            const tag = m.annotations?.[ANNOTATION_REF_NAME];
            return tag === undefined || byTag.get(tag) !== m.digest;
          }),
        }));
      },
      note: 'unreachable blobs were pruned',
      close: async () => {},
    };
  }
  throw invalidArgument(`gc supports type=registry and type=local repositories, not type=${spec.type}`, { reason: 'invalid-spec' });
}

export async function gcRepository(spec: CacheSpec, ctx: BackendContext = {}, opts: GcOptions = {}): Promise<GcReport> {
  const globs = (opts.keep ?? []).map(globToRegExp);
  const cutoff = opts.olderThan === undefined ? undefined : (opts.now ?? new Date()).getTime() - opts.olderThan;
  const repo = await openRepo(spec, ctx);
  try {
    const entries = await repo.list(opts.signal);
    const kept: GcTag[] = [];
    const expired: GcTag[] = [];
    for (const { tag, desc } of entries) {
      const t: GcTag = { tag, digest: desc.digest };
      if (globs.some((g) => g.test(tag))) {
        kept.push({ ...t, reason: 'keep-glob' });
        continue;
      }
      let loaded;
      try {
        loaded = await loadCache(repo.store, desc, { signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        const e = err instanceof BkError ? err : undefined;
        kept.push({ ...t, reason: e?.reason === 'uninferrable' ? 'not-a-cache' : 'unreadable' });
        continue;
      }
      if (loaded.kind === 'inline') {
        kept.push({ ...t, reason: 'not-a-cache' }); // an image: never ours to delete
        continue;
      }
      const newest = newestRecord(loaded.parts);
      if (newest) t.newest = newest;
      if (cutoff !== undefined && !newest) kept.push({ ...t, reason: 'no-dates' });
      else if (cutoff !== undefined && Date.parse(newest!) >= cutoff) kept.push({ ...t, reason: 'recent' });
      else expired.push(t);
    }
    // A manifest a kept tag names is never deleted, whatever other tags name it.
    const keptDigests = new Set(kept.map((k) => k.digest));
    const deleted: GcTag[] = [];
    for (const t of expired) {
      if (keptDigests.has(t.digest)) kept.push({ ...t, reason: 'shares-manifest' });
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
      if (repo.store instanceof LocalStore) report.prune = await repo.store.prune();
      report.note = repo.note;
    }
    const byTag = (a: GcTag, b: GcTag) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
    report.deleted.sort(byTag);
    report.kept.sort(byTag);
    return report;
  } finally {
    await repo.close();
  }
}
