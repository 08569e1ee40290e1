// Random cache graphs for property tests: several stages, cross links with
// selectors, shared layer blobs under different parents.
import { createHash } from 'node:crypto';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { rng } from '../../integration/harness/rng.js';
import type { Descriptor } from '../../src/oci/descriptor.js';

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

export function layerDesc(n: number): Descriptor {
  return {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: sha(`layer-${n}`),
    size: `layer-${n}`.length,
    annotations: { 'containerd.io/uncompressed': sha(`diff-${n}`), 'buildkit/createdat': '2026-01-01T00:00:00Z' },
  };
}

export interface GraphSpec {
  records: { digest: string; links: { input: number; src: number; selector: string }[]; result?: { createdAt: string; layers: number[] } }[];
}

/** A random DAG description; record i only links from earlier records. */
export function randomSpec(seed: number, size = 30, opts: { repeatDigests?: boolean } = {}): GraphSpec {
  const r = rng(seed);
  const pick = (n: number) => Math.floor(r() * n);
  const records: GraphSpec['records'] = [];
  for (let i = 0; i < size; i++) {
    // Optionally some digests repeat, so that equal keys under different inputs occur.
    const digest = sha(`rec-${opts.repeatDigests && r() < 0.15 && i > 0 ? pick(i) : i}`);
    const links: GraphSpec['records'][number]['links'] = [];
    if (i > 0 && r() > 0.2) {
      const inputs = 1 + pick(3);
      for (let input = 0; input < inputs; input++) {
        const n = 1 + pick(2);
        for (let k = 0; k < n; k++) links.push({ input, src: pick(i), selector: r() < 0.3 ? `sel-${pick(3)}` : '' });
      }
    }
    const result =
      r() < 0.5
        ? { createdAt: `2026-01-0${1 + pick(9)}T00:00:0${pick(10)}.${pick(1000)}Z`, layers: Array.from({ length: 1 + pick(4) }, () => pick(6)) }
        : undefined;
    records.push({ digest, links, result });
  }
  return { records };
}

/** Builds the graph, adding records and links in an order given by `seed` (0: as listed). */
export function buildGraph(spec: GraphSpec, seed = 0): CacheGraph {
  const g = new CacheGraph();
  const r = rng(seed);
  const order = spec.records.map((_, i) => i);
  if (seed) order.sort(() => r() - 0.5);
  const nodes = new Map<number, CacheNode>();
  for (const i of order) nodes.set(i, g.add(spec.records[i]!.digest) as CacheNode);
  for (const i of order) {
    const rec = spec.records[i]!;
    const links = [...rec.links];
    if (seed) links.reverse();
    for (const l of links) nodes.get(i)!.linkFrom(nodes.get(l.src)!, l.input, l.selector);
    if (rec.result) nodes.get(i)!.addResult(rec.result.createdAt, rec.result.layers.map(layerDesc));
  }
  return g;
}
