// verify: does every blob a cache names exist in its store (and, with
// `deep`, hash to its digest)? BuildKit fails a whole build when a cache names
// a blob the registry lost (moby/buildkit#2332, docker/buildx#681); a result
// whose chain lost a blob is better dropped, so the build sees a miss. That is
// what `repair` writes. Everything goes through the ContentStore interface:
// `exists` (a HEAD on registries, a stat on layouts) and `fetch`.
import { setMaxListeners } from 'node:events';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BkError, failedPrecondition } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { decodeIndex, decodeManifest, detectManifestMediaType } from '../../oci/manifest.js';
import { isIndexMediaType, MT } from '../../oci/media-types.js';
import { fetchBytes, verified } from '../../store/content.js';
import type { ContentStore } from '../../store/types.js';
import { DEFAULT_CONNECTIONS_PER_HOST } from '../../store/registry/hosts.js';
import type { CacheNode } from '../graph.js';
import { addToGraph, loadParsed, parseManifestBytes, type LoadedCache } from '../import.js';
import type { ExportResult } from '../operations.js';
import { openImport, readManifest, type BackendContext } from '../remote/index.js';
import type { CacheSpec } from '../spec.js';
import { mapLimit } from '../transfer.js';
import { CacheGraph } from '../graph.js';
import { exportFrom, keepResults, resultOf, type OpenedCache } from './cache.js';

/** HEADs (or reads, with `deep`) in flight at once when no registry concurrency is configured. */
export const DEFAULT_VERIFY_CONCURRENCY = 8;

export interface VerifyReport {
  ok: boolean;
  manifest: string;
  /** Distinct blobs the manifest names (config, layers, child manifests), checked. */
  blobs: number;
  missing: string[];
  corrupt: string[];
  records: number;
  /** Records whose result chain names a missing or corrupt blob. */
  brokenRecords: number;
}

export interface VerifyOptions {
  /** Read every blob and check its digest and size (streamed). */
  deep?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
}

export interface Verified {
  report: VerifyReport;
  /** The cache as imported, when its manifest and config could be read (for repair). */
  opened?: OpenedCache;
  broken: Set<CacheNode>;
  /** The descriptors found missing or corrupt, by digest and size (keyOf). */
  lost: Set<string>;
}

type Check = 'ok' | 'missing' | 'corrupt';

/**
 * What a check is of: a digest at a size. One manifest may name a digest
 * twice with different sizes; the importer (BuildKit too: the last entry
 * wins its map) fetches with one of them, and a fetch with the wrong size
 * fails. So each distinct (digest, size) is checked, and a record is judged
 * by the descriptors its chain really carries.
 */
const keyOf = (d: Descriptor) => `${d.digest} ${d.size}`;

/**
 * A read that found something other than the blob: bytes that do not match
 * (DATA_LOSS), or on a layout something that is no regular file in the
 * blob's place (a symlink, a FIFO, a directory: bad-place).
 */
function isCorrupt(err: unknown): boolean {
  return err instanceof BkError && (err.code === 'DATA_LOSS' || err.reason === 'bad-place');
}

/** What a failed read or check says about the blob (corrupt, or missing), or undefined when it says nothing (an outage). */
function checkOf(err: unknown): Exclude<Check, 'ok'> | undefined {
  if (isCorrupt(err)) return 'corrupt';
  if (err instanceof BkError && err.code === 'NOT_FOUND') return 'missing';
  return undefined;
}

/**
 * Checks one blob: present (and intact, when deep). Outages and auth errors
 * propagate; the answer about one blob is judged, never the run's failure
 * (a registry answering a HEAD for a digest with another content's says
 * what a deep read would: corrupt). Deep reads every blob anyway, so it asks
 * no exists() first: the read alone tells a blob that is not there (missing)
 * from one that is there but wrong (corrupt), which exists() cannot (a
 * layout's exists() is false for both).
 */
async function checkBlob(store: ContentStore, d: Descriptor, deep: boolean, signal?: AbortSignal): Promise<Check> {
  try {
    if (!deep) return (await store.exists(d, { signal })) ? 'ok' : 'missing';
    const stream = await store.fetch(d, { signal });
    await pipeline(verified(stream, d), new Writable({ write: (_c, _e, cb) => cb() }), { signal });
    return 'ok';
  } catch (err) {
    const check = checkOf(err);
    if (check) return check;
    throw err;
  }
}

/**
 * Checks every descriptor once, at most `limit` at a time (a fixed pool of
 * workers, so 10 000 blobs never mean 10 000 pending waiters); the first hard
 * error cancels the checks in flight and ends the run.
 */
async function checkAll(
  store: ContentStore,
  descs: Iterable<Descriptor>,
  deep: boolean,
  limit: number,
  results: Map<string, Check>,
  signal?: AbortSignal,
): Promise<void> {
  const todo: Descriptor[] = [];
  for (const d of descs) {
    if (results.has(keyOf(d))) continue;
    results.set(keyOf(d), 'ok');
    todo.push(d);
  }
  const inner = new AbortController();
  // Each worker's request and stream listen on it: a few per worker is expected.
  setMaxListeners(4 * limit + 10, inner.signal);
  const onAbort = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await mapLimit(todo, limit, async (d) => {
      try {
        results.set(keyOf(d), await checkBlob(store, d, deep, inner.signal));
      } catch (err) {
        inner.abort(err);
        throw err;
      }
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Check results (by keyOf) by digest: a digest fails at any size it is named
 * with. `except` (the manifest itself) is not counted among the blobs.
 */
function tally(results: Map<string, Check>, except?: string) {
  const missing = new Set<string>();
  const corrupt = new Set<string>();
  const digests = new Set<string>();
  const lost = new Set<string>();
  for (const [k, c] of results) {
    const d = k.slice(0, k.indexOf(' '));
    if (d !== except) digests.add(d);
    if (c !== 'ok') lost.add(k);
    if (c === 'missing') missing.add(d);
    else if (c === 'corrupt') corrupt.add(d);
  }
  return { missing, corrupt, digests, lost };
}

/** The descriptors a parsed manifest names directly: index children, or config and layers. */
function childrenOf(doc: unknown): Descriptor[] {
  if (isIndexMediaType(detectManifestMediaType(doc))) return decodeIndex(doc).manifests;
  const m = decodeManifest(doc);
  return m.config.digest ? [m.config, ...m.layers] : m.layers;
}

export async function verifyCache(spec: CacheSpec, ctx: BackendContext = {}, opts: VerifyOptions = {}): Promise<Verified> {
  const limit = opts.concurrency ?? ctx.registry?.concurrency ?? DEFAULT_VERIFY_CONCURRENCY;
  // One kept-alive connection per check in flight, and one for the config read
  // alongside them: a smaller pool would queue what the caller asked to run at once.
  const connectionsPerHost = Math.max(limit + 1, ctx.registry?.connectionsPerHost ?? DEFAULT_CONNECTIONS_PER_HOST);
  const target = await openImport(spec, { ...ctx, registry: { ...ctx.registry, connectionsPerHost } });
  const store = target.store;
  let keepOpen = false;
  try {
    // Tag and manifest in one GET: the registry looks the manifest up once, and the checks start a round trip sooner.
    const read = await readManifest(target, opts.signal).catch((err: unknown) => {
      // Bytes that are not what the registry says they are (or on a layout,
      // no regular file in the manifest's place): resolve, and let the read
      // by digest report the manifest corrupt (or missing).
      if (isCorrupt(err)) return undefined;
      throw err;
    });
    const manifest = read?.desc ?? (await target.resolve({ signal: opts.signal }));
    const res = await verifyManifest(store, manifest, { ...opts, concurrency: limit }, read?.bytes);
    if (res.opened) res.opened.reference = target.reference;
    keepOpen = !!res.opened;
    return res;
  } finally {
    if (!keepOpen) await store.close?.();
  }
}

/**
 * Verifies the cache `manifest` names in `store`; `read` is the manifest's
 * bytes when the caller has read and checked them already. The caller
 * closes `store` (also through `opened`).
 */
export async function verifyManifest(store: ContentStore, manifest: Descriptor, opts: VerifyOptions = {}, read?: Buffer): Promise<Verified> {
  const deep = opts.deep === true;
  const limit = opts.concurrency ?? DEFAULT_VERIFY_CONCURRENCY;
  /** By keyOf(descriptor). */
  const results = new Map<string, Check>();
  const report = (loaded?: LoadedCache, graph?: CacheGraph): Verified => {
    const { missing, corrupt, digests, lost } = tally(results, manifest.digest);
    const broken = new Set<CacheNode>();
    for (const n of graph?.recordsWithResults() ?? []) {
      if (resultOf(n)?.layers.some((l) => lost.has(keyOf(l)))) broken.add(n);
    }
    return {
      lost,
      report: {
        ok: missing.size === 0 && corrupt.size === 0,
        manifest: manifest.digest,
        blobs: digests.size,
        missing: [...missing].sort(),
        corrupt: [...corrupt].sort(),
        records: loaded?.recordCount ?? 0,
        brokenRecords: broken.size,
      },
      broken,
      opened: loaded && graph ? { store, loaded, graph, close: async () => store.close?.() } : undefined,
    };
  };

  // The manifest itself, then what it names directly: config, layers, child manifests.
  let bytes: Buffer;
  try {
    bytes = read ?? (await fetchBytes(store, manifest, undefined, opts.signal));
  } catch (err) {
    const check = checkOf(err);
    if (!check) throw err;
    results.set(keyOf(manifest), check);
    return report();
  }
  results.set(keyOf(manifest), 'ok');
  const doc = parseManifestBytes(bytes, manifest.digest);
  // The cache config is read and parsed, and its graph built, while the
  // blobs are checked: the checks keep the registry busy, the parse
  // (megabytes for 10 000 layers) keeps us busy. A failure is judged once
  // the checks are done.
  // One promise that never rejects: a config that fails to become a graph
  // (a looping record, a bad key) is an answer judged below like a failed
  // read, not a rejection left unhandled while the checks run (that ended
  // the process, and would end a daemon serving an Import with verify_blobs).
  const loading = (async () => {
    const loaded = await loadParsed(store, manifest, doc, { signal: opts.signal });
    const graph = new CacheGraph();
    addToGraph(graph, loaded);
    return { loaded, graph };
  })().catch((err: unknown) => ({ err }));
  await checkAll(store, childrenOf(doc), deep, limit, results, opts.signal);
  const got = await loading;
  if ('err' in got) {
    const err = got.err;
    const check = checkOf(err);
    if (check) {
      // A cache config its check passed (a HEAD that says 200) but that cannot
      // be read (404, or other bytes) is what a reader gets: missing or corrupt.
      const config = childrenOf(doc).find((d) => d.mediaType === MT.buildkitCacheConfig);
      if (config && results.get(keyOf(config)) === 'ok') results.set(keyOf(config), check);
      // Without the config (or a platform's manifest) there are no records to judge.
      if ([...results.values()].some((c) => c !== 'ok')) return report();
    }
    throw err;
  }
  const { loaded, graph } = got;
  // Inline caches of multi-platform images name layers one level further down.
  const layers: Descriptor[] = [];
  for (const part of loaded.parts) for (const d of part.provider.values()) layers.push(d);
  await checkAll(store, layers, deep, limit, results, opts.signal);
  return report(loaded, graph);
}

export interface RepairResult {
  /** Records whose results were dropped, by cache key. */
  dropped: string[];
  export: ExportResult;
}

/**
 * Writes the verified cache without the results whose chains lost a blob.
 * Blobs go first, then config and manifest, then the tag (pushCache's order),
 * so a repair to the same ref replaces the tag in one step and a repair cut
 * short leaves the old tag as it was.
 */
export async function repairCache(v: Verified, to: CacheSpec, ctx: BackendContext = {}, opts: { signal?: AbortSignal } = {}): Promise<RepairResult> {
  if (!v.opened) {
    throw failedPrecondition(
      `cannot repair ${v.report.manifest}: its manifest or cache config is missing or corrupt, so no record can be recovered`,
      { reason: 'unrepairable' },
    );
  }
  const { graph, dropped } = keepResults(v.opened.graph, (n) => !v.broken.has(n));
  const res = await exportFrom(v.opened, graph, to, ctx, { signal: opts.signal });
  if (!res.manifest) {
    throw failedPrecondition(`nothing left to keep: every result of ${v.report.manifest} lost a blob; nothing was written`, { reason: 'unrepairable' });
  }
  return { dropped: [...new Set(dropped.filter((n) => v.broken.has(n)).map((n) => n.digest))].sort(), export: res };
}

/**
 * The gRPC Import's `verify_blobs`: checks the layers of every result of
 * `graph` (the graph the solver gets, as imported from `loaded`) and returns
 * it without the results whose chains name a blob that is missing (or
 * corrupt, with `deep`), and the keys of those records. The check works
 * from the graph, not from a second read of the manifest: between the
 * import and the check the registry may have lost or replaced the manifest
 * (a gc, a push), and whatever happened to it, every layer the answer names
 * has been checked.
 */
export async function dropLostResults(
  store: ContentStore,
  loaded: LoadedCache,
  graph: CacheGraph,
  opts: VerifyOptions = {},
): Promise<{ graph: CacheGraph; dropped: string[]; report: VerifyReport }> {
  const results = new Map<string, Check>();
  const layers: Descriptor[] = [];
  for (const n of graph.recordsWithResults()) for (const l of resultOf(n)?.layers ?? []) layers.push(l);
  await checkAll(store, layers, opts.deep === true, opts.concurrency ?? DEFAULT_VERIFY_CONCURRENCY, results, opts.signal);
  const t = tally(results);
  const isLost = (n: CacheNode) => !!resultOf(n)?.layers.some((l) => t.lost.has(keyOf(l)));
  const kept = t.lost.size ? keepResults(graph, (n) => !isLost(n)) : { graph, dropped: [] };
  const dropped = [...new Set(kept.dropped.filter(isLost).map((n) => n.digest))].sort();
  const report: VerifyReport = {
    ok: t.lost.size === 0,
    manifest: loaded.manifest.digest,
    blobs: t.digests.size,
    missing: [...t.missing].sort(),
    corrupt: [...t.corrupt].sort(),
    records: loaded.recordCount,
    brokenRecords: dropped.length,
  };
  return { graph: kept.graph, dropped, report };
}
