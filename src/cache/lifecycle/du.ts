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

/** A distinct blob: its size (as the first result naming it gives it) and how many results name it. */
interface Ref {
  size: number;
  users: number;
  /** 1 + the last result (in graph order) that counted it, so a chain naming a blob twice counts it once. */
  last: number;
}

/**
 * Two passes over the results' layers with one Ref per distinct blob, and no
 * Map or array per result (at tens of thousands of records those outlived
 * the young generation and cost more than the counting).
 */
export function diskUsage(graph: CacheGraph): DuReport {
  const refs = new Map<string, Ref>();
  // Only the records with results: most records of a large cache have none.
  const nodes = graph.recordsWithResults();
  // The records with results, in graph order, so the second pass walks only those.
  const withResults: CacheNode[] = [];
  // Indexed loops: for-of allocated an iterator result per step here.
  for (let i = 0; i < nodes.length; i++) {
    const res = resultOf(nodes[i]!);
    if (!res) continue;
    const seq = withResults.push(nodes[i]!);
    // The size a chain gives a blob it names twice is its last; the first chain naming a blob sets the blob's size.
    const layers = res.layers;
    for (let k = 0; k < layers.length; k++) {
      const l = layers[k]!;
      const r = refs.get(l.digest);
      if (!r) refs.set(l.digest, { size: l.size, users: 1, last: seq });
      else if (r.last !== seq) {
        r.users++;
        r.last = seq;
      } else if (r.users === 1) r.size = l.size;
    }
  }
  let bytes = 0;
  refs.forEach((r) => (bytes += r.size));
  const results = new Array<DuResult>(withResults.length);
  // Second pass: the same chains in the same order; `last` now marks what this pass counted.
  for (let c = 0; c < withResults.length; c++) {
    const n = withResults[c]!;
    const res = n.result!;
    const seq = withResults.length + 1 + c;
    let total = 0;
    let unique = 0;
    // Backwards, so the first time a blob is met is its last appearance, whose size the chain gives it.
    for (let i = res.layers.length - 1; i >= 0; i--) {
      const l = res.layers[i]!;
      const r = refs.get(l.digest)!;
      if (r.last === seq) continue;
      r.last = seq;
      total += l.size;
      if (r.users === 1) unique += l.size;
    }
    const r: DuResult = { record: n.digest, layers: res.layers.length, bytes: total, uniqueBytes: unique, createdAt: res.createdAt };
    const description = describeLayers(res.layers);
    if (description) r.description = description;
    results[c] = r;
  }
  results.sort(largestFirst);
  return { blobs: refs.size, bytes, results };
}

function largestFirst(a: DuResult, b: DuResult): number {
  return b.bytes - a.bytes || b.uniqueBytes - a.uniqueBytes || (a.record < b.record ? -1 : a.record > b.record ? 1 : 0);
}

/** The step that made a chain's top layer, where BuildKit or the image history recorded one. */
export function describeLayers(layers: readonly { annotations?: Record<string, string> }[]): string | undefined {
  const top = layers[layers.length - 1];
  return top?.annotations?.[ANNOTATION_DESCRIPTION] || undefined;
}
