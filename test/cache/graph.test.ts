import { describe, expect, it } from 'vitest';
import { decodeCacheConfig, encodeCacheConfig } from '../../src/cache/config.js';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { parseConfig } from '../../src/cache/parse.js';
import { buildGraph, layerDesc, randomSpec } from './random-graph.js';

const dg = (c: string) => 'sha256:' + c.repeat(64);

function bytesOf(g: CacheGraph): string {
  return encodeCacheConfig(g.marshal().config);
}

describe('graph API and normalization', () => {
  it('merges equal root keys and keeps the first result', () => {
    const g = new CacheGraph();
    const a1 = g.add(dg('a'));
    const a2 = g.add(dg('a'));
    a1.addResult('2026-01-01T00:00:00Z', [layerDesc(1)]);
    a2.addResult('2026-01-02T00:00:00Z', [layerDesc(2)]);
    const { config } = g.marshal();
    expect(config.records).toHaveLength(1);
    expect(config.layers.map((l) => l.blob)).toEqual([layerDesc(1).digest]);
    expect(config.records[0]!.results[0]!.createdAt).toBe('2026-01-01T00:00:00Z');
  });

  it('merges linked records with the same digest reached through the same links', () => {
    const g = new CacheGraph();
    const a = g.add(dg('a'));
    const b1 = g.add(dg('b'));
    const b2 = g.add(dg('b'));
    b1.linkFrom(a, 0, 's');
    b2.linkFrom(g.add(dg('a')), 0, 's');
    b2.addResult('2026-01-01T00:00:00Z', [layerDesc(1)]);
    const { config } = g.marshal();
    expect(config.records.map((r) => r.digest)).toEqual([dg('a'), dg('b')]);
    expect(config.records[1]!.inputs).toEqual([[{ selector: 's', link: 0 }]]);
    // b1 was normalized first and had no result; BuildKit keeps the first record.
    expect(config.records[1]!.results).toEqual([]);
  });

  it('keeps records with the same digest but different inputs apart', () => {
    const g = new CacheGraph();
    const b1 = g.add(dg('b'));
    const b2 = g.add(dg('b'));
    b1.linkFrom(g.add(dg('1')), 0);
    b2.linkFrom(g.add(dg('2')), 0);
    expect(g.marshal().config.records.filter((r) => r.digest === dg('b'))).toHaveLength(2);
  });

  it('drops records with an input that has no link, and what depends on them', () => {
    const g = new CacheGraph();
    const a = g.add(dg('a'));
    const bad = g.add(dg('b'));
    bad.linkFrom(a, 1); // input 0 never linked
    const dependent = g.add(dg('c'));
    dependent.linkFrom(bad, 0);
    const fine = g.add(dg('d'));
    fine.linkFrom(a, 0);
    expect(g.marshal().config.records.map((r) => r.digest)).toEqual([dg('a'), dg('d')]);
  });

  it('drops random: keys; a link from one is ignored, as BuildKit ignores it', () => {
    const g = new CacheGraph();
    const r = g.add('random:123');
    const b = g.add(dg('b'));
    b.linkFrom(r, 0);
    expect(g.marshal().config.records).toEqual([{ results: [], chains: [], digest: dg('b'), inputs: [] }]);
  });

  it('cuts loops that merging creates', () => {
    const g = new CacheGraph();
    const a = g.add(dg('a'));
    const x1 = g.add(dg('c'));
    x1.linkFrom(a, 0);
    const y = g.add(dg('e'));
    y.linkFrom(x1, 0);
    const x2 = g.add(dg('c'));
    x2.linkFrom(a, 0);
    x2.linkFrom(y, 0); // merges into x1, which would then depend on y, which depends on x1
    const { config } = g.marshal();
    expect(config.records.map((r) => r.digest)).toEqual([dg('a'), dg('c'), dg('e')]);
    expect(config.records[1]!.inputs).toEqual([[{ selector: '', link: 0 }]]);
    expect(config.records[2]!.inputs).toEqual([[{ selector: '', link: 1 }]]);
  });

  it('rejects a graph that loops through its own links', () => {
    const g = new CacheGraph();
    const a = g.add(dg('a'));
    const b = g.add(dg('b'));
    a.linkFrom(b, 0);
    b.linkFrom(a, 0);
    g.add(dg('c')).linkFrom(a, 0);
    expect(() => g.marshal()).toThrow(/looping/);
  });

  it('leaves the graph unchanged: marshalling twice gives the same bytes', () => {
    const g = buildGraph(randomSpec(7, 40, { repeatDigests: true }));
    expect(bytesOf(g)).toBe(bytesOf(g));
  });

  it('orders one blob under different parents the same whatever the insertion order', () => {
    // BuildKit compares pre-sort parent indexes here, so its output depends on map order.
    const make = (flip: boolean) => {
      const g = new CacheGraph();
      const chains = [
        [layerDesc(1), layerDesc(9)],
        [layerDesc(2), layerDesc(9)],
        [layerDesc(3), layerDesc(2), layerDesc(9)],
      ];
      if (flip) chains.reverse();
      chains.forEach((c, i) => g.add(dg(String(flip ? 2 - i : i))).addResult('2026-01-01T00:00:00Z', c));
      return bytesOf(g);
    };
    expect(make(false)).toBe(make(true));
    const cfg = decodeCacheConfig(make(false));
    const nines = cfg.layers.map((l, i) => ({ ...l, i })).filter((l) => l.blob === layerDesc(9).digest);
    expect(nines).toHaveLength(3);
  });
});

describe('properties over random graphs', () => {
  const seeds = Array.from({ length: 60 }, (_, i) => i + 1);

  // Merges give precedence to earlier records (as BuildKit does), so insertion
  // order may matter when keys repeat; with distinct keys it must not, even
  // though layer blobs repeat under different parents.
  it('the same graph always marshals to the same bytes, whatever the insertion order', () => {
    for (const seed of seeds) {
      const spec = randomSpec(seed);
      const want = bytesOf(buildGraph(spec));
      for (const order of [11, 12, 13]) expect(bytesOf(buildGraph(spec, order)), `seed ${seed} order ${order}`).toBe(want);
    }
  });

  it('encode -> decode -> encode is a fixed point', () => {
    for (const seed of seeds) {
      const g = buildGraph(randomSpec(seed, 30, { repeatDigests: true }));
      const { config, descriptors } = g.marshal();
      const bytes = encodeCacheConfig(config);
      const g2 = new CacheGraph();
      parseConfig(g2, decodeCacheConfig(bytes), descriptors);
      expect(bytesOf(g2), `seed ${seed}`).toBe(bytes);
    }
  });

  it('addResult keeps the last result, as BuildKit does', () => {
    const g = new CacheGraph();
    const n = g.add(dg('a')) as CacheNode;
    n.addResult('2026-01-01T00:00:00Z', [layerDesc(1)]);
    n.addResult(new Date('2026-01-02T00:00:00.250Z'), [layerDesc(2)]);
    expect(n.result?.createdAt).toBe('2026-01-02T00:00:00.25Z');
    expect(n.result?.layers[0]!.digest).toBe(layerDesc(2).digest);
  });
});

describe('record keys', () => {
  it('are digests whoever builds the graph; random: keys are dropped', () => {
    const g = new CacheGraph();
    for (const bad of ['../../etc/passwd', 'sha256:short', '']) expect(() => g.add(bad), bad).toThrow(/invalid (sha256 )?digest/);
    expect(g.add('random:abc').constructor.name).toBe('DiscardedRecord');
    expect(g.nodes).toHaveLength(0);
  });
});
