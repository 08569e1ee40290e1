// trim: keep a cache within an age and a size. Results created within
// `maxAge` stay; then the oldest results go until the blobs the remaining
// results name fit in `maxSize` (and those among them whose chains the kept
// results still name in full come back: dropping them freed nothing). Dropping a result drops the records that led
// only to it (keepResults), so the graph stays one BuildKit imports, and the
// output is exactly what `copy` writes for the kept records.
import type { CacheGraph, CacheNode } from '../graph.js';
import type { MarshalResult } from '../marshal.js';
import { prefixKeys } from '../sort-keys.js';
import { keepResults, resultOf, type OpenedCache } from './cache.js';

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

function parseMs(createdAt: string): number {
  const t = Date.parse(createdAt);
  return Number.isNaN(t) ? -Infinity : t;
}

/** A result with what trim needs of it, computed once (a sort would otherwise parse each time n log n times). */
interface Entry {
  n: CacheNode;
  ms: number;
  /** The rank of its creation time (ms, then the string) among the cache's distinct ones. */
  time: number;
  /** prefixKeys() of its record's key. */
  key: number;
  /** The chain's distinct blobs (a chain may name a blob twice, e.g. the empty layer): Blobs.ref/size[from..to-1]. */
  from: number;
  to: number;
}

/** Oldest first; equal times by creation string (nanoseconds), then key, so the choice is deterministic. */
function byAge(a: Entry, b: Entry): number {
  // Numbers first (most comparisons end there without reading the strings behind them).
  if (a.time !== b.time) return a.time - b.time;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1; // not the difference, a double (a heap number per call)
  return a.n.digest < b.n.digest ? -1 : a.n.digest > b.n.digest ? 1 : a.n.uid - b.n.uid;
}

/**
 * The milliseconds and rank of each distinct creation time among `nodes`'
 * results: ranked by milliseconds, then by the string (nanoseconds); each
 * string parsed once.
 */
function rankTimes(nodes: readonly CacheNode[]): Map<string, { ms: number; rank: number }> {
  const times = new Map<string, { ms: number; rank: number }>();
  for (const n of nodes) {
    const c = n.result!.createdAt;
    if (!times.has(c)) times.set(c, { ms: parseMs(c), rank: 0 });
  }
  const distinct = [...times.keys()].sort((x, y) => times.get(x)!.ms - times.get(y)!.ms || (x < y ? -1 : x > y ? 1 : 0));
  distinct.forEach((c, i) => (times.get(c)!.rank = i));
  return times;
}

/**
 * Every result chain's distinct blobs in two flat arrays (a blob id and the
 * size the chain gives it; ids number the cache's distinct digests), rather
 * than a Map and an array of objects per result: at tens of thousands of
 * records those outlived the young generation and made trim mostly
 * garbage collection.
 */
class Blobs {
  readonly ids = new Map<string, number>();
  readonly ref: number[] = [];
  readonly size: number[] = [];
  /** Per blob id: 1 + the entry that last named it, and where in `ref` that entry has it. */
  private readonly lastEntry: number[] = [];
  /** Per blob id: the size the last layer naming it gives it, chains added in graph order (what the cache's layers weigh). */
  readonly lastSize: number[] = [];
  private readonly lastPos: number[] = [];

  /** Adds a chain's blobs in order of first appearance, each with the size its last appearance gives; returns its range. */
  addChain(entry: number, layers: readonly { digest: string; size: number }[]): { from: number; to: number } {
    const from = this.ref.length;
    for (const l of layers) {
      let id = this.ids.get(l.digest);
      if (id === undefined) {
        this.ids.set(l.digest, (id = this.lastEntry.length));
        this.lastEntry.push(0);
        this.lastSize.push(0);
        this.lastPos.push(0);
      }
      this.lastSize[id] = l.size;
      if (this.lastEntry[id] === entry + 1) {
        this.size[this.lastPos[id]!] = l.size;
        continue;
      }
      this.lastEntry[id] = entry + 1;
      this.lastPos[id] = this.ref.length;
      this.ref.push(id);
      this.size.push(l.size);
    }
    return { from, to: this.ref.length };
  }
}

export function planTrim(graph: CacheGraph, opts: TrimOptions): TrimPlan {
  const blobs = new Blobs();
  const nodes: CacheNode[] = [];
  for (const n of graph.recordsWithResults()) if (resultOf(n)) nodes.push(n);
  const times = rankTimes(nodes);
  const keys = prefixKeys(nodes.length, (i) => nodes[i]!.digest);
  // Every field its final value (and kind of number) from the start, so all entries keep one shape.
  const withResults: Entry[] = nodes.map((n, i) => {
    const t = times.get(n.result!.createdAt)!;
    const { from, to } = blobs.addChain(i, n.result!.layers);
    return { n, ms: t.ms, time: t.rank, key: keys[i]!, from, to };
  });
  withResults.sort(byAge);
  const drop = new Uint8Array(graph.nodes.length);
  if (opts.maxAge !== undefined) {
    const cutoff = (opts.now ?? new Date()).getTime() - opts.maxAge;
    for (const e of withResults) if (e.ms < cutoff) drop[e.n.index] = 1;
  }
  // Reference counts of the blobs still named (by blob id), so each drop costs its chain's length.
  const blobCount = blobs.ids.size;
  const users = new Int32Array(blobCount);
  const sizes = new Float64Array(blobCount);
  let total = 0;
  for (const e of withResults) {
    if (drop[e.n.index]) continue;
    for (let k = e.from; k < e.to; k++) {
      const id = blobs.ref[k]!;
      if (users[id] === 0) {
        total += blobs.size[k]!;
        sizes[id] = blobs.size[k]!;
      }
      users[id]!++;
    }
  }
  if (opts.maxSize !== undefined) {
    const bySize: Entry[] = [];
    for (const e of withResults) {
      if (total <= opts.maxSize) break;
      if (drop[e.n.index]) continue;
      drop[e.n.index] = 1;
      bySize.push(e);
      for (let k = e.from; k < e.to; k++) {
        const id = blobs.ref[k]!;
        if (--users[id]! === 0) total -= sizes[id]!;
      }
    }
    // An old result whose whole chain the kept results still name frees
    // nothing by going (a base step under newer steps): it stays.
    for (const e of bySize) {
      let freesNothing = true;
      for (let k = e.from; k < e.to && freesNothing; k++) if (users[blobs.ref[k]!] === 0) freesNothing = false;
      if (freesNothing) drop[e.n.index] = 0;
    }
  }
  // What the cache's layers weigh: the distinct blobs all results name, each with the size its last appearance in graph order gives it.
  let before = 0;
  for (const size of blobs.lastSize) before += size;
  const { graph: kept } = keepResults(graph, (n) => !drop[n.index]);
  // The results keepResults dropped are exactly `drop`; withResults has them oldest first.
  const dropped: CacheNode[] = [];
  for (const e of withResults) if (drop[e.n.index]) dropped.push(e.n);
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
      after: { records: marshalled.flat.records, layers: marshalled.flat.layers, bytes },
      droppedResults: plan.dropped.length,
    },
  };
}
