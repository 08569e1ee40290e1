import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { diskUsage } from '../../../src/cache/lifecycle/du.js';
import { CacheGraph } from '../../../src/cache/graph.js';
import { BK, readmeSummaries } from '../../fixtures.js';
import { graphOf, loadFixture } from '../helpers.js';
import { chainGraph, MemoryBlobs } from './helpers.js';

describe('du', () => {
  for (const [name] of readmeSummaries()) {
    it(`${name}: the total counts each blob the results name once`, async () => {
      const dir = path.join(BK, name);
      const { loaded } = await loadFixture(dir);
      const r = diskUsage(await graphOf(dir));
      // For BuildKit's own caches every blob the manifest lists is some result's layer.
      const listed = new Map<string, number>();
      for (const p of loaded.parts) for (const d of p.provider.values()) listed.set(d.digest, d.size);
      expect(r.blobs).toBe(listed.size);
      expect(r.bytes).toBe([...listed.values()].reduce((a, b) => a + b, 0));
      for (const x of r.results) {
        expect(x.uniqueBytes).toBeLessThanOrEqual(x.bytes);
        expect(x.bytes).toBeLessThanOrEqual(r.bytes);
      }
      // Largest first.
      expect(r.results.map((x) => x.bytes)).toEqual([...r.results.map((x) => x.bytes)].sort((a, b) => b - a));
    });
  }

  it('inline caches carry the step from the image history', async () => {
    const r = diskUsage(await graphOf(path.join(BK, 'inline-image')));
    expect(r.results.some((x) => x.description && /RUN|COPY/.test(x.description))).toBe(true);
  });

  it('shared and unique bytes of two chains on a common base', () => {
    const graph = new CacheGraph();
    const blobs = new MemoryBlobs();
    // Two builds: each 2 steps of 100-byte layers, but build y is stacked on x's first step.
    const x = chainGraph(2, { graph, blobs, prefix: 'x', size: () => 100 });
    const y = chainGraph(1, { graph, blobs, prefix: 'y', size: () => 300 });
    y.nodes[0]!.addResult(y.nodes[0]!.result!.createdAt, [x.nodes[0]!.result!.layers[0]!, ...y.nodes[0]!.result!.layers]);
    const r = diskUsage(graph);
    const sizeOf = (d: string) => blobs.map.get(d)!.length;
    const base = x.nodes[0]!.result!.layers[0]!.digest;
    const top = y.nodes[0]!.result!.layers[1]!.digest;
    expect(r.results).toHaveLength(3);
    const ry = r.results.find((e) => e.record === y.nodes[0]!.digest)!;
    expect(ry).toMatchObject({ layers: 2, bytes: sizeOf(base) + sizeOf(top), uniqueBytes: sizeOf(top) });
    const rx0 = r.results.find((e) => e.record === x.nodes[0]!.digest)!;
    expect(rx0.uniqueBytes).toBe(0); // its only layer is every chain's base
    expect(r.bytes).toBe([...blobs.map.values()].reduce((a, b) => a + b.length, 0));
  });
});
