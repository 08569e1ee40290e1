import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { diskUsage } from '../../../src/cache/lifecycle/du.js';
import { CacheGraph, type CacheNode } from '../../../src/cache/graph.js';
import { rng } from '../../../integration/harness/rng.js';
import { BK, readmeSummaries } from '../../fixtures.js';
import { graphOf, loadFixture } from '../helpers.js';
import { brokenConfigs, chainGraph, MemoryBlobs, rawLocalCache, sha } from './helpers.js';
import { openCache } from '../../../src/cache/lifecycle/cache.js';
import { diffGraphs } from '../../../src/cache/lifecycle/diff.js';
import { trimOpened } from '../../../src/cache/lifecycle/trim.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';

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

  it('counts as a plain reference does on 200 random caches, chains naming a blob twice and at other sizes included', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const pick = (n: number) => Math.floor(r() * n);
      const graph = new CacheGraph();
      for (let i = 0; i < 1 + pick(30); i++) {
        const n = graph.add(sha(`du-${seed}-${i}`)) as CacheNode;
        if (r() < 0.3) continue;
        // Few digests, so chains share blobs and name one twice; a digest's size differs between mentions.
        const layers = Array.from({ length: pick(6) }, () => {
          const b = pick(8);
          return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(`blob-${b}`), size: 100 * b + pick(3) };
        });
        n.addResult('2026-01-01T00:00:00Z', layers);
      }
      // The reference: per chain, its distinct blobs at the size of their last mention in it; the total, each
      // blob at the size the first chain naming it gives it; unique, the blobs no other chain names.
      const chains = graph.recordsWithResults().filter((n) => n.result!.layers.length > 0);
      const own = chains.map((n) => new Map(n.result!.layers.map((l) => [l.digest, l.size])));
      const users = new Map<string, number>();
      const first = new Map<string, number>();
      for (const m of own) for (const [d, size] of m) users.set(d, (users.get(d) ?? 0) + 1), first.has(d) || first.set(d, size);
      const want = chains.map((n, c) => ({
        record: n.digest,
        layers: n.result!.layers.length,
        bytes: [...own[c]!.values()].reduce((a, b) => a + b, 0),
        uniqueBytes: [...own[c]!].reduce((a, [d, size]) => a + (users.get(d) === 1 ? size : 0), 0),
      }));
      const got = diskUsage(graph);
      expect(got.blobs, `seed ${seed}`).toBe(first.size);
      expect(got.bytes, `seed ${seed}`).toBe([...first.values()].reduce((a, b) => a + b, 0));
      const key = (x: { record: string }) => x.record;
      expect(got.results.map(({ record, layers, bytes, uniqueBytes }) => ({ record, layers, bytes, uniqueBytes })).sort((a, b) => key(a).localeCompare(key(b))), `seed ${seed}`).toEqual(
        want.sort((a, b) => key(a).localeCompare(key(b))),
      );
    }
  });

  it('du, trim and diff on hostile configs: a typed error for each broken one, a correct answer for odd but valid ones', async () => {
    const { layers: l, configs } = brokenConfigs();
    for (const [config, reason] of configs) {
      await expect(openCache(parseCacheSpec(await rawLocalCache(config, l))), reason).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason });
    }
    const layers = [
      { blob: l[0]!.desc.digest, parent: -1 },
      { blob: l[1]!.desc.digest, parent: 0 },
    ];
    const [a, b] = [l[0]!.desc, l[1]!.desc];
    const odd = {
      layers,
      records: [
        // Far future and far past, a key twice (BuildKit keeps both records), and a result given by a chain only.
        { digest: sha('future'), layers: [{ layer: 1, createdAt: '9999-12-31T23:59:59.999999999Z' }] },
        { digest: sha('past'), layers: [{ layer: 0, createdAt: '0001-01-01T00:00:00Z' }] },
        { digest: sha('twice'), inputs: [[{ link: 0 }, { link: 1 }], [{ link: 0 }]], layers: [{ layer: 0, createdAt: '2026-11-01T00:00:00Z' }] },
        { digest: sha('twice'), inputs: [[{ link: 0 }, { link: 1 }], [{ link: 0 }]], layers: [{ layer: 0, createdAt: '2026-11-01T00:00:00Z' }] },
        { digest: sha('chain'), chains: [{ layers: [0, 1], createdAt: '2026-11-02T00:00:00Z' }] },
      ],
    };
    const opened = await openCache(parseCacheSpec(await rawLocalCache(odd, l)));
    try {
      const du = diskUsage(opened.graph);
      expect(du).toMatchObject({ blobs: 2, bytes: a.size + b.size });
      expect(du.results.map((r) => r.bytes).sort()).toEqual([a.size, a.size, a.size, a.size + b.size, a.size + b.size].sort());
      const t = trimOpened(opened, { maxAge: 86_400_000, now: new Date('2026-12-02T00:00:00Z') });
      // Only the far-future result is within a day of "now"; the records it needs stay.
      expect(t.report).toMatchObject({ droppedResults: 4, after: { records: 1, layers: 2, bytes: a.size + b.size } });
      expect(diffGraphs(opened.graph, opened.graph)).toEqual({ common: 5, onlyA: 0, onlyB: 0, divergences: [] });
    } finally {
      await opened.close();
    }
    const empty = await openCache(parseCacheSpec(await rawLocalCache({ layers: [], records: [] })));
    try {
      expect(diskUsage(empty.graph)).toEqual({ blobs: 0, bytes: 0, results: [] });
      expect(trimOpened(empty, { maxSize: 0 }).report).toEqual({ before: { records: 0, layers: 0, bytes: 0 }, after: { records: 0, layers: 0, bytes: 0 }, droppedResults: 0 });
    } finally {
      await empty.close();
    }
  });
});

