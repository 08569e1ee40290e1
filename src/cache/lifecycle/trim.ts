// trim: keep a cache within an age and a size. Results created within
// `maxAge` stay; then the oldest results go until the blobs the remaining
// results name fit in `maxSize` (and those among them whose chains the kept
// results still name in full come back: dropping them freed nothing). Dropping a result drops the records that led
// only to it (keepResults), so the graph stays one BuildKit imports, and the
// output is exactly what `copy` writes for the kept records.
import type { CacheGraph, CacheNode } from '../graph.js';
import type { MarshalResult } from '../marshal.js';
import { keepResults, namedBlobs, resultOf, sumSizes, type OpenedCache } from './cache.js';

export interface TrimOptions {
  /** Milliseconds; results created longer ago are dropped. */
  maxAge?: number;
  /** Bytes the kept results' distinct blobs may weigh. */
  maxSize?: number;
  /** The reference time for maxAge (default: now). */
  now?: Date;
}

export interface TrimPlan {
  graph: CacheGraph;
  /** Dropped results, oldest first. */
  dropped: CacheNode[];
  before: { bytes: number };
}

function createdMs(n: CacheNode): number {
  const t = Date.parse(n.result!.createdAt);
  return Number.isNaN(t) ? -Infinity : t;
}

/** A result with what trim needs of it, computed once (a sort would otherwise parse each time n log n times). */
interface Entry {
  n: CacheNode;
  ms: number;
  /** The chain's distinct blobs (a chain may name a blob twice, e.g. the empty layer). */
  blobs: { digest: string; size: number }[];
}

/** Oldest first; equal times by creation string (nanoseconds), then key, so the choice is deterministic. */
function byAge(a: Entry, b: Entry): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1;
  const ca = a.n.result!.createdAt;
  const cb = b.n.result!.createdAt;
  if (ca !== cb) return ca < cb ? -1 : 1;
  return a.n.digest < b.n.digest ? -1 : a.n.digest > b.n.digest ? 1 : a.n.uid - b.n.uid;
}

function entryOf(n: CacheNode): Entry {
  const seen = new Map<string, number>();
  for (const l of resultOf(n)!.layers) seen.set(l.digest, l.size);
  const blobs: Entry['blobs'] = [];
  for (const [digest, size] of seen) blobs.push({ digest, size });
  return { n, ms: createdMs(n), blobs };
}

export function planTrim(graph: CacheGraph, opts: TrimOptions): TrimPlan {
  const withResults: Entry[] = [];
  for (const n of graph.nodes) if (resultOf(n)) withResults.push(entryOf(n));
  withResults.sort(byAge);
  const drop = new Set<CacheNode>();
  if (opts.maxAge !== undefined) {
    const cutoff = (opts.now ?? new Date()).getTime() - opts.maxAge;
    for (const e of withResults) if (e.ms < cutoff) drop.add(e.n);
  }
  // Reference counts of the blobs still named, so each drop costs its chain's length.
  const users = new Map<string, number>();
  const sizes = new Map<string, number>();
  let total = 0;
  for (const e of withResults) {
    if (drop.has(e.n)) continue;
    for (const d of e.blobs) {
      const u = users.get(d.digest) ?? 0;
      if (u === 0) {
        total += d.size;
        sizes.set(d.digest, d.size);
      }
      users.set(d.digest, u + 1);
    }
  }
  if (opts.maxSize !== undefined) {
    const bySize: Entry[] = [];
    for (const e of withResults) {
      if (total <= opts.maxSize) break;
      if (drop.has(e.n)) continue;
      drop.add(e.n);
      bySize.push(e);
      for (const d of e.blobs) {
        const u = users.get(d.digest)! - 1;
        users.set(d.digest, u);
        if (u === 0) total -= sizes.get(d.digest)!;
      }
    }
    // An old result whose whole chain the kept results still name frees
    // nothing by going (a base step under newer steps): it stays.
    for (const e of bySize) if (e.blobs.every((d) => users.get(d.digest)! > 0)) drop.delete(e.n);
  }
  const before = sumSizes(namedBlobs(graph.nodes));
  const { graph: kept } = keepResults(graph, (n) => !drop.has(n));
  // The results keepResults dropped are exactly `drop`; withResults has them oldest first.
  const dropped: CacheNode[] = [];
  for (const e of withResults) if (drop.has(e.n)) dropped.push(e.n);
  return { graph: kept, dropped, before: { bytes: before } };
}

export interface TrimCounts {
  records: number;
  layers: number;
  bytes: number;
}

export interface TrimReport {
  before: TrimCounts;
  after: TrimCounts;
  droppedResults: number;
}

/** Plans a trim of an opened cache and marshals the kept part once, for both the report and the export. */
export function trimOpened(opened: OpenedCache, opts: TrimOptions): { report: TrimReport; plan: TrimPlan; marshalled: MarshalResult } {
  const plan = planTrim(opened.graph, opts);
  const marshalled = plan.graph.marshal();
  let bytes = 0;
  for (const d of marshalled.descriptors.values()) bytes += d.size;
  return {
    plan,
    marshalled,
    report: {
      before: { records: opened.loaded.recordCount, layers: opened.loaded.layerCount, bytes: plan.before.bytes },
      after: { records: marshalled.config.records.length, layers: marshalled.config.layers.length, bytes },
      droppedResults: plan.dropped.length,
    },
  };
}
