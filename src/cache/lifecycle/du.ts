// du: what makes a cache big. Each result chain weighs the distinct blobs it
// names; a blob several results name is shared, one only a single result
// names is that result's own (what dropping it alone would free). The total
// counts every distinct blob the cache's results name once, as a registry
// stores it once.
import { ANNOTATION_DESCRIPTION } from '../../oci/descriptor.js';
import type { CacheGraph, CacheNode } from '../graph.js';
import { resultOf } from './cache.js';

export interface DuResult {
  /** Cache key of the record the result belongs to. */
  record: string;
  /** Blobs in the result's layer chain. */
  layers: number;
  /** Bytes of the chain's distinct blobs. */
  bytes: number;
  /** Bytes of the chain's blobs no other result names. */
  uniqueBytes: number;
  createdAt: string;
  description?: string;
}

export interface DuReport {
  blobs: number;
  bytes: number;
  /** Largest first. */
  results: DuResult[];
}

/**
 * Two passes over the results' layers. Each distinct blob gets a number the
 * first time it is met (one Map lookup per layer, in the first pass only);
 * its size, how many results name it and which result last counted it live
 * in typed arrays by that number, and the second pass reads the numbers the
 * first wrote down rather than hashing every digest again. No Map, object or
 * array per result or per blob: at tens of thousands of records those
 * outlived the young generation and cost more than the counting.
 */
export function diskUsage(graph: CacheGraph): DuReport {
  const ids = new Map<string, number>();
  // Only the records with results: most records of a large cache have none.
  const nodes = graph.recordsWithResults();
  // The records with results, in graph order, so the second pass walks only those.
  const withResults: CacheNode[] = [];
  let layerCount = 0;
  for (let i = 0; i < nodes.length; i++) {
    const res = resultOf(nodes[i]!);
    if (!res) continue;
    withResults.push(nodes[i]!);
    layerCount += res.layers.length;
  }
  // Per layer of every chain, in order: its blob's number.
  const blobOf = new Int32Array(layerCount);
  // Per blob (at most one per layer): the size the first chain naming it gives it, its users, and 1 + the last chain that counted it.
  const size = new Float64Array(layerCount);
  const users = new Int32Array(layerCount);
  const last = new Int32Array(layerCount);
  let at = 0;
  // Indexed loops: for-of allocated an iterator result per step here.
  for (let c = 0; c < withResults.length; c++) {
    const seq = c + 1;
    // The size a chain gives a blob it names twice is its last; the first chain naming a blob sets the blob's size.
    const layers = withResults[c]!.result!.layers;
    for (let k = 0; k < layers.length; k++) {
      const l = layers[k]!;
      let id = ids.get(l.digest);
      if (id === undefined) {
        ids.set(l.digest, (id = ids.size));
        size[id] = l.size;
        users[id] = 1;
        last[id] = seq;
      } else if (last[id] !== seq) {
        users[id]!++;
        last[id] = seq;
      } else if (users[id] === 1) size[id] = l.size;
      blobOf[at++] = id;
    }
  }
  let bytes = 0;
  for (let id = 0; id < ids.size; id++) bytes += size[id]!;
  const results = new Array<DuResult>(withResults.length);
  // Second pass: the same chains in the same order; `last` now marks what this pass counted.
  let from = 0;
  for (let c = 0; c < withResults.length; c++) {
    const n = withResults[c]!;
    const res = n.result!;
    const seq = withResults.length + 1 + c;
    let total = 0;
    let unique = 0;
    // Backwards, so the first time a blob is met is its last appearance, whose size the chain gives it.
    for (let i = res.layers.length - 1; i >= 0; i--) {
      const id = blobOf[from + i]!;
      if (last[id] === seq) continue;
      last[id] = seq;
      const l = res.layers[i]!;
      total += l.size;
      if (users[id] === 1) unique += l.size;
    }
    from += res.layers.length;
    const r: DuResult = { record: n.digest, layers: res.layers.length, bytes: total, uniqueBytes: unique, createdAt: res.createdAt };
    const description = describeLayers(res.layers);
    if (description) r.description = description;
    results[c] = r;
  }
  results.sort(largestFirst);
  return { blobs: ids.size, bytes, results };
}

function largestFirst(a: DuResult, b: DuResult): number {
  return b.bytes - a.bytes || b.uniqueBytes - a.uniqueBytes || (a.record < b.record ? -1 : a.record > b.record ? 1 : 0);
}

/** The step that made a chain's top layer, where BuildKit or the image history recorded one. */
export function describeLayers(layers: readonly { annotations?: Record<string, string> }[]): string | undefined {
  const top = layers[layers.length - 1];
  return top?.annotations?.[ANNOTATION_DESCRIPTION] || undefined;
}
