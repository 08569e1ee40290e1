// Benchmark: decode, normalize and marshal cache graphs of the family in
// shared/fixtures/synthetic (record i linked to i-1, about a third also
// linked through input 1 with a selector to a random earlier record, every
// 5th record with a result chain of up to 8 shared layers). BuildKit needs
// ~0.6 s at 200 records and ~27 s at 300 on these; the target here is 20 000
// records in under 2 s with a peak RSS under 500 MiB.
//
// Run one size per process so the peak RSS is that size's own:
//   node dist/integration/bench/graph.js 20000
import { createHash } from 'node:crypto';
import { decodeCacheConfig, encodeCacheConfig } from '../../src/cache/config.js';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { parseConfig } from '../../src/cache/parse.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { rng } from '../harness/rng.js';

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

function layer(n: number): Descriptor {
  const content = `layer-${n}`;
  return {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: sha(content),
    size: content.length,
    annotations: { 'containerd.io/uncompressed': sha(`diff-${n}`) },
  };
}

/** Builds a graph of the synthetic family and returns its encoded config. */
export function generate(records: number, seed = 1): { bytes: string; descriptors: Map<string, Descriptor> } {
  const r = rng(seed);
  const g = new CacheGraph();
  const nodes: CacheNode[] = [];
  for (let i = 0; i < records; i++) {
    const n = g.add(sha(`rec-${i}`)) as CacheNode;
    if (i > 0) n.linkFrom(nodes[i - 1]!, 0);
    if (i > 1 && r() < 1 / 3) n.linkFrom(nodes[Math.floor(r() * (i - 1))]!, 1, `sel${Math.floor(r() * 3)}`);
    if (i % 5 === 0) {
      const len = 1 + Math.floor(r() * 8);
      n.addResult("2023-11-14T22:13:20Z", Array.from({ length: len }, () => layer(Math.floor(r() * Math.max(40, records / 25)))));
    }
    nodes.push(n);
  }
  const { config, descriptors } = g.marshal();
  return { bytes: encodeCacheConfig(config), descriptors };
}

export function measure(records: number): { records: number; layers: number; configBytes: number; ms: number; peakRssMiB: number } {
  const { bytes, descriptors } = generate(records);
  const t0 = process.hrtime.bigint();
  const cc = decodeCacheConfig(bytes);
  const g = new CacheGraph();
  parseConfig(g, cc, descriptors);
  const out = g.marshal().flat.encode();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!out.equals(Buffer.from(bytes, 'utf8'))) throw new Error('re-encoding changed the bytes');
  return { records, layers: cc.layers.length, configBytes: bytes.length, ms: Math.round(ms), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
}

if (process.argv[1]?.endsWith('graph.js')) {
  const size = Number(process.argv[2] ?? 20000);
  console.log(JSON.stringify(measure(size)));
}
