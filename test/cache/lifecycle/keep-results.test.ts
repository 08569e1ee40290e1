import { describe, expect, it } from 'vitest';
import { encodeCacheConfig } from '../../../src/cache/config.js';
import { CacheGraph, type CacheNode } from '../../../src/cache/graph.js';
import { keepResults, resultOf } from '../../../src/cache/lifecycle/cache.js';
import { rng } from '../../../integration/harness/rng.js';
import { buildGraph, randomSpec } from '../random-graph.js';
import { graphOf } from '../helpers.js';
import { GRAPH_200 } from '../../fixtures.js';

/**
 * The subgraph keepResults means, built the plain way, from the record
 * objects: every kept result's record and everything upstream of it, copied
 * in graph order with their hints, results and links.
 */
function reference(graph: CacheGraph, keep: (n: CacheNode) => boolean): CacheGraph {
  const needed = new Set<CacheNode>();
  const visit = (n: CacheNode) => {
    if (needed.has(n)) return;
    needed.add(n);
    for (const g of n.links) for (const l of g.all) visit(l.src);
  };
  for (const n of graph.nodes) if (resultOf(n) && keep(n)) visit(n);
  const out = new CacheGraph();
  graph.layerHints.forEach((v, k) => out.layerHints.set(k, v));
  const copies = new Map<CacheNode, CacheNode>();
  for (const n of graph.nodes) {
    if (!needed.has(n)) continue;
    const c = out.addCopy(n.digest, n.hint);
    if (resultOf(n) && keep(n)) c.result = { createdAt: n.result!.createdAt, layers: n.result!.layers.map((l) => ({ ...l })) };
    copies.set(n, c);
  }
  for (const n of graph.nodes) {
    const c = copies.get(n);
    if (!c) continue;
    n.links.forEach((g, i) => g.all.forEach((l) => c.linkFrom(copies.get(l.src)!, i, l.selector)));
  }
  return out;
}

const encoded = (g: CacheGraph) => encodeCacheConfig(g.marshal().config);

describe('keepResults', () => {
  it('marshals to what the subgraph made of record objects marshals to, on 60 random graphs', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const graph = buildGraph(randomSpec(seed, 40, { repeatDigests: seed % 2 === 0 }), seed % 3);
      const r = rng(seed);
      const keepSet = new Set(graph.nodes.filter(() => r() < 0.5));
      const keep = (n: CacheNode) => keepSet.has(n);
      const kept = keepResults(graph, keep);
      const want = reference(graph, keep);
      expect(encoded(kept.graph), `seed ${seed}`).toBe(encoded(want));
      expect(kept.dropped.map((n) => n.index)).toEqual(graph.recordsWithResults().filter((n) => resultOf(n) && !keep(n)).map((n) => n.index));
      // Asked for its records, the subgraph has exactly the reference's, and marshals the same from them.
      expect(kept.graph.nodes.map((n) => [n.digest, n.hint, n.result, n.links.map((g) => g.all.map((l) => [l.src.index, l.selector]))])).toEqual(
        want.nodes.map((n) => [n.digest, n.hint, n.result, n.links.map((g) => g.all.map((l) => [l.src.index, l.selector]))]),
      );
      expect(kept.graph.recordsWithResults().map((n) => n.index)).toEqual(want.recordsWithResults().map((n) => n.index));
      expect(encoded(kept.graph)).toBe(encoded(want));
    }
  });

  it('shares no result with the source graph, and can grow once made', () => {
    const graph = buildGraph(randomSpec(7, 30));
    const kept = keepResults(graph, () => true).graph;
    const before = encoded(kept);
    for (const n of graph.recordsWithResults()) n.result!.layers[0]!.size += 1;
    expect(encoded(kept)).toBe(before);
    const n = kept.nodes.length;
    const added = kept.add('sha256:' + 'a'.repeat(64)) as CacheNode;
    expect(added.index).toBe(n);
    expect(kept.nodes.length).toBe(n + 1);
  });

  it('shares the layer hints with its source until either adds to them, then each keeps its own', async () => {
    const graph = await graphOf(GRAPH_200);
    const hints = [...graph.hintsView];
    expect(hints.length).toBeGreaterThan(0);
    const a = keepResults(graph, () => true).graph;
    const b = keepResults(graph, () => true).graph;
    const before = encoded(a);
    // The source adds a hint: the subgraphs still have the ones they were cut with.
    graph.layerHints.set('sha256:' + '1'.repeat(64), [9, 9]);
    expect([...a.hintsView]).toEqual(hints);
    // A subgraph adds one: neither its source nor its sibling sees it.
    a.layerHints.set('sha256:' + '2'.repeat(64), [8, 8]);
    expect(a.hintsView.get('sha256:' + '2'.repeat(64))).toEqual([8, 8]);
    expect(graph.hintsView.has('sha256:' + '2'.repeat(64))).toBe(false);
    expect([...b.hintsView]).toEqual(hints);
    expect(graph.hintsView.size).toBe(hints.length + 1);
    expect(encoded(b)).toBe(before);
  });
});
