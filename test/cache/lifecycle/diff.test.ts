import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffGraphs } from '../../../src/cache/lifecycle/diff.js';
import { CacheGraph, type CacheNode } from '../../../src/cache/graph.js';
import { BK, readmeSummaries } from '../../fixtures.js';
import { graphOf } from '../helpers.js';
import { layer, sha } from './helpers.js';

/**
 * A Dockerfile-like graph: FROM (a root without result), RUN, COPY (input 1
 * from the content checksum of the copied file, a root), RUN.
 */
function build(opts: { file?: string; run1?: string; copySelector?: string } = {}) {
  const g = new CacheGraph();
  const add = (k: string) => g.add(sha(k)) as CacheNode;
  const from = add('from busybox');
  const run1 = add(opts.run1 ?? 'run mkdir');
  run1.linkFrom(from, 0);
  run1.addResult('2026-01-01T00:00:00Z', [layer('base').desc, layer(opts.run1 ?? 'run1').desc]);
  const content = add(`content ${opts.file ?? 'a.txt v1'}`);
  const copy = add('copy a.txt');
  copy.linkFrom(run1, 0);
  copy.linkFrom(content, 1, opts.copySelector ?? '');
  copy.addResult('2026-01-01T00:01:00Z', [...run1.result!.layers, layer(`copy ${opts.file ?? 'v1'}`).desc]);
  const run2 = add('run md5sum');
  run2.linkFrom(copy, 0);
  run2.addResult('2026-01-01T00:02:00Z', [...copy.result!.layers, layer(`sum ${opts.file ?? 'v1'}`).desc]);
  return { g, from, run1, content, copy, run2 };
}

describe('diff', () => {
  it('identical caches: everything common, no divergence', () => {
    const r = diffGraphs(build().g, build().g);
    expect(r).toEqual({ common: 5, onlyA: 0, onlyB: 0, divergences: [] });
  });

  it('a changed file: the first divergence is the COPY, replacing A\'s COPY, with the content input differing', () => {
    const a = build();
    const b = build({ file: 'a.txt v2' });
    const r = diffGraphs(a.g, b.g);
    expect(r).toMatchObject({ common: 2, onlyA: 3, onlyB: 3 });
    expect(r.divergences).toHaveLength(1);
    const d = r.divergences[0]!;
    expect(d).toMatchObject({ record: b.copy.digest, depth: 2, description: 'RUN step copy a.txt v2' });
    expect(d.layers.map((l) => l.digest)).toEqual(b.copy.result!.layers.map((l) => l.digest));
    expect(d.replaces).toEqual({
      record: a.copy.digest,
      differences: [{ what: 'input', input: 1, a: a.content.digest, b: b.content.digest }],
    });
  });

  it('a changed command: a new key at depth 1, replacing the old step', () => {
    const a = build();
    const b = build({ run1: 'run mkdir -p' });
    const r = diffGraphs(a.g, b.g);
    expect(r.divergences.map((d) => d.record)).toEqual([b.run1.digest]);
    expect(r.divergences[0]!.depth).toBe(1);
    expect(r.divergences[0]!.replaces).toEqual({ record: a.run1.digest, differences: [{ what: 'key', a: a.run1.digest, b: b.run1.digest }] });
  });

  it('a changed selector', () => {
    const a = build({ copySelector: 'sha256:aaaa' });
    const b = build({ copySelector: 'sha256:bbbb' });
    const r = diffGraphs(a.g, b.g);
    expect(r.divergences.map((d) => d.record)).toEqual([b.copy.digest]);
    expect(r.divergences[0]!.replaces!.differences).toEqual([{ what: 'selector', input: 1, a: 'sha256:aaaa', b: 'sha256:bbbb' }]);
  });

  it('one key on many records (the same step on many bases) matches each by its source', () => {
    // 12 records share the key of one step, each on its own base: more than
    // diff looks through as a list, so it indexes them by source.
    const build12 = (changed?: number) => {
      const g = new CacheGraph();
      const steps: CacheNode[] = [];
      for (let i = 0; i < 12; i++) {
        const base = g.add(sha(`base ${i}${i === changed ? ' v2' : ''}`)) as CacheNode;
        const step = g.add(sha('run make')) as CacheNode;
        step.linkFrom(base, 0);
        step.addResult('2026-01-01T00:00:00Z', [layer(`make on ${i}${i === changed ? ' v2' : ''}`).desc]);
        steps.push(step);
      }
      return { g, steps };
    };
    expect(diffGraphs(build12().g, build12().g)).toEqual({ common: 24, onlyA: 0, onlyB: 0, divergences: [] });
    const a = build12();
    const b = build12(5);
    const r = diffGraphs(a.g, b.g);
    expect(r).toMatchObject({ common: 22, onlyA: 2, onlyB: 2 });
    expect(r.divergences).toHaveLength(1);
    expect(r.divergences[0]).toMatchObject({ record: sha('run make'), depth: 1 });
    expect(r.divergences[0]!.layers.map((l) => l.digest)).toEqual([layer('make on 5 v2').desc.digest]);
    expect(r.divergences[0]!.replaces).toEqual({
      record: sha('run make'),
      differences: [{ what: 'input', input: 0, a: sha('base 5'), b: sha('base 5 v2') }],
    });
  });

  it('one alternative link per input is enough to match, as BuildKit finds a key through any of them', () => {
    const a = build();
    const b = build();
    // B's COPY also links input 1 from another source A never had.
    const extra = b.g.add(sha('other content')) as CacheNode;
    b.copy.linkFrom(extra, 1, '');
    const r = diffGraphs(a.g, b.g);
    expect(r.divergences).toEqual([]);
    expect(r).toMatchObject({ common: 5, onlyB: 1 });
  });

  for (const [name] of readmeSummaries()) {
    it(`${name} against itself is fully common`, async () => {
      const g = await graphOf(path.join(BK, name));
      const r = diffGraphs(g, await graphOf(path.join(BK, name)));
      expect(r).toEqual({ common: g.nodes.length, onlyA: 0, onlyB: 0, divergences: [] });
    });
  }

  it('mode=min against mode=max of the same build: min is inside max', async () => {
    const max = await graphOf(path.join(BK, 'registry-index-oci-max'));
    const min = await graphOf(path.join(BK, 'registry-index-docker-min'));
    const r = diffGraphs(max, min);
    expect(r.onlyB).toBe(0);
    expect(r.divergences).toEqual([]);
  });

  it('many records with one key and one source told apart by selector, under one record linking from all: linear, not pairwise', () => {
    // A step run over 50 000 files (one key, one source, a selector each), and
    // a step over all of them whose key differs between A and B. Indexed by
    // source alone, every record was a candidate for every other, and the
    // divergence's replaced record was scored over 50 000 × 50 000 link pairs:
    // about two minutes (past the suite's test timeout), where this takes about a second.
    const n = 50_000;
    const wide = (last: string) => {
      const g = new CacheGraph();
      const root = g.add(sha('root')) as CacheNode;
      const top = g.add(sha(last)) as CacheNode;
      for (let i = 0; i < n; i++) {
        const x = g.add(sha('per file')) as CacheNode;
        x.linkFrom(root, 0, sha(`file ${i}`));
        top.linkFrom(x, 0);
      }
      top.addResult('2026-01-01T00:00:00Z', [layer('top').desc]);
      return g;
    };
    const r = diffGraphs(wide('sum v1'), wide('sum v2'));
    expect(r).toMatchObject({ common: n + 1, onlyA: 1, onlyB: 1 });
    expect(r.divergences).toHaveLength(1);
    expect(r.divergences[0]).toMatchObject({ record: sha('sum v2'), depth: 2, replaces: { record: sha('sum v1'), differences: [{ what: 'key', a: sha('sum v1'), b: sha('sum v2') }] } });
  });
});

