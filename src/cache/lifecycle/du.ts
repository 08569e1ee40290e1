// du: what makes a cache big. Each result chain weighs the distinct blobs it
// names; a blob several results name is shared, one only a single result
// names is that result's own (what dropping it alone would free). The total
// counts every distinct blob the cache's results name once, as a registry
// stores it once.
import { ANNOTATION_DESCRIPTION } from '../../oci/descriptor.js';
import type { CacheGraph } from '../graph.js';
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

export function diskUsage(graph: CacheGraph): DuReport {
  const refs = new Map<string, { size: number; users: number }>();
  const chains: { record: string; createdAt: string; description?: string; blobs: Map<string, number>; layers: number }[] = [];
  for (const n of graph.nodes) {
    const res = resultOf(n);
    if (!res) continue;
    const blobs = new Map<string, number>();
    for (const l of res.layers) blobs.set(l.digest, l.size);
    for (const [d, size] of blobs) {
      const r = refs.get(d);
      if (r) r.users++;
      else refs.set(d, { size, users: 1 });
    }
    chains.push({ record: n.digest, createdAt: res.createdAt, description: describeLayers(res.layers), blobs, layers: res.layers.length });
  }
  let bytes = 0;
  for (const r of refs.values()) bytes += r.size;
  const results: DuResult[] = chains.map((c) => {
    let total = 0;
    let unique = 0;
    for (const [d, size] of c.blobs) {
      total += size;
      if (refs.get(d)!.users === 1) unique += size;
    }
    const r: DuResult = { record: c.record, layers: c.layers, bytes: total, uniqueBytes: unique, createdAt: c.createdAt };
    if (c.description) r.description = c.description;
    return r;
  });
  results.sort((a, b) => b.bytes - a.bytes || b.uniqueBytes - a.uniqueBytes || (a.record < b.record ? -1 : a.record > b.record ? 1 : 0));
  return { blobs: refs.size, bytes, results };
}

/** The step that made a chain's top layer, where BuildKit or the image history recorded one. */
export function describeLayers(layers: readonly { annotations?: Record<string, string> }[]): string | undefined {
  const top = layers[layers.length - 1];
  return top?.annotations?.[ANNOTATION_DESCRIPTION] || undefined;
}
