// Graph (de)serialization through the real protobuf encoding of the Import
// response, and the validation the daemon applies to graphs it receives.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CacheGraph } from '../../src/cache/graph.js';
import { importChain } from '../../src/cache/operations.js';
import { BkError } from '../../src/errors.js';
import { digestBytes } from '../../src/oci/digest.js';
import { cacheProto, type WireGraph, type WireImportResponse } from '../../src/api/proto.js';
import { DEFAULT_GRAPH_LIMITS, DEFAULT_MAX_GRAPH_BYTES, GraphAssembler, graphFromWire, graphToWire, splitGraph, wireGraphBytes } from '../../src/api/wire.js';
import { BK, GRAPH_200 } from '../fixtures.js';

/** Encodes and decodes a graph exactly as it travels in an ImportResponse. */
function overTheWire(g: WireGraph): WireGraph {
  const m = cacheProto().service.Import!;
  const res = { hit: true, hit_index: 0, graph: g } as unknown as WireImportResponse;
  return (m.responseDeserialize(m.responseSerialize(res)) as WireImportResponse).graph!;
}

const layer = (name: string) => ({
  mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  digest: digestBytes(name),
  size: name.length,
  annotations: { 'containerd.io/uncompressed': digestBytes(`u-${name}`) },
});

function errOf(fn: () => unknown): BkError {
  try {
    fn();
  } catch (err) {
    return err as BkError;
  }
  throw new Error('expected an error');
}

describe('graph over the wire', () => {
  it.each([path.join(BK, 'registry-index-oci-max'), path.join(BK, 'local-imagemanifest-max'), GRAPH_200])(
    'an imported cache survives the wire with the same config (%s)',
    async (dir) => {
      const { graph } = await importChain([{ type: 'local', attrs: { src: dir } }]);
      const back = graphFromWire(overTheWire(graphToWire(graph)));
      const a = graph.marshal();
      const b = back.marshal();
      expect(b.config).toEqual(a.config);
      expect([...b.descriptors.entries()]).toEqual([...a.descriptors.entries()]);
    },
  );

  it('keeps selectors, input indexes, results and annotations', () => {
    const g = new CacheGraph();
    const base = g.add(digestBytes('base'));
    const x = g.add(digestBytes('x'));
    const y = g.add(digestBytes('y'));
    x.linkFrom(base, 0, 'sel-a');
    y.linkFrom(x, 0, '');
    y.linkFrom(base, 1, 'sel-b');
    base.addResult('2024-01-02T03:04:05Z', [layer('a')]);
    y.addResult('2024-01-02T03:04:06.5Z', [layer('a'), layer('b')]);
    const w = overTheWire(graphToWire(g));
    expect(w.links).toEqual(
      expect.arrayContaining([
        { record_id: 1, src_id: 0, input: 0, selector: 'sel-a' },
        { record_id: 2, src_id: 0, input: 1, selector: 'sel-b' },
      ]),
    );
    expect(graphFromWire(w).marshal()).toEqual(g.marshal());
  });

  it('assembles a graph sent in parts, with references to later parts', () => {
    const g = new CacheGraph();
    let prev = g.add(digestBytes('r0'));
    prev.addResult('2024-01-01T00:00:00Z', [layer('l0')]);
    for (let i = 1; i < 50; i++) {
      const n = g.add(digestBytes(`r${i}`));
      n.linkFrom(prev, 0, `s${i}`);
      n.addResult('2024-01-01T00:00:00Z', [layer(`l${i}`)]);
      prev = n;
    }
    const parts = [...splitGraph(graphToWire(g), 7)].reverse();
    expect(parts.length).toBeGreaterThan(5);
    const a = new GraphAssembler();
    for (const p of parts) a.add(overTheWire(p));
    expect(a.build().marshal()).toEqual(g.marshal());
  });

  it('rejects malformed graphs with INVALID_ARGUMENT', () => {
    const rec = (id: number) => ({ id, digest: digestBytes(`k${id}`) });
    const cases: [string, WireGraph][] = [
      ['duplicate', { records: [rec(1), rec(1)], links: [], results: [] }],
      ['dangling link', { records: [rec(1)], links: [{ record_id: 1, src_id: 9, input: 0, selector: '' }], results: [] }],
      ['dangling result', { records: [rec(1)], links: [], results: [{ record_id: 2, created_at: '', layers: [] }] }],
      ['bad digest', { records: [rec(1)], links: [], results: [{ record_id: 1, created_at: '', layers: [{ media_type: 'x', digest: 'sha256:zz', size: 1, annotations: {}, urls: [] }] }] }],
      ['bad time', { records: [rec(1)], links: [], results: [{ record_id: 1, created_at: 'yesterday', layers: [] }] }],
      ['huge input index', { records: [rec(1), rec(2)], links: [{ record_id: 2, src_id: 1, input: 4_000_000_000, selector: '' }], results: [] }],
    ];
    for (const [name, g] of cases) {
      const e = errOf(() => {
        const a = new GraphAssembler();
        a.add(g);
        a.build();
      });
      expect(e.code, name).toBe('INVALID_ARGUMENT');
    }
  });

  it('rejects looping links', () => {
    const rec = (id: number) => ({ id, digest: digestBytes(`k${id}`) });
    const loop: WireGraph = {
      records: [rec(1), rec(2), rec(3)],
      links: [
        { record_id: 2, src_id: 1, input: 0, selector: '' },
        { record_id: 3, src_id: 2, input: 0, selector: '' },
        { record_id: 2, src_id: 3, input: 1, selector: '' },
      ],
      results: [],
    };
    const e = errOf(() => graphFromWire(loop));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.reason).toBe('looping-record');
    const self = errOf(() => graphFromWire({ records: [rec(1)], links: [{ record_id: 1, src_id: 1, input: 0, selector: '' }], results: [] }));
    expect(self.reason).toBe('looping-record');
  });

  it('refuses graphs over the record limit with RESOURCE_EXHAUSTED', () => {
    const a = new GraphAssembler({ maxRecords: 3, maxLinks: 10, maxLayersPerResult: 10, maxInputs: 10, maxGraphBytes: 1 << 20 });
    const e = errOf(() => a.add({ records: [0, 1, 2, 3].map((id) => ({ id, digest: digestBytes(`r${id}`) })), links: [], results: [] }));
    expect(e.code).toBe('RESOURCE_EXHAUSTED');
  });
});

describe('hostile graphs', () => {
  const rec = (id: number, digest = digestBytes(`r${id}`)) => ({ id, digest, hint: null });

  it('validates record keys as digests (a path is not a cache key); random: keys are dropped as in BuildKit', () => {
    for (const bad of ['../../etc/passwd', 'sha256:abc', 'sha256:../../x', `sha256:${'a'.repeat(63)}G`, 'md5:d41d8cd98f00b204e9800998ecf8427e']) {
      const e = errOf(() => new GraphAssembler().add({ records: [rec(0, bad)], links: [], results: [] }));
      expect([e.code, e.reason], bad).toEqual(['INVALID_ARGUMENT', 'invalid-digest']);
    }
    const a = new GraphAssembler();
    a.add({ records: [rec(0), rec(1, 'random:abc123')], links: [{ record_id: 0, src_id: 1, input: 0, selector: '' }], results: [] });
    expect(a.build().nodes).toHaveLength(1);
  });

  it('takes a part with 130 000 links without reaching a stack limit', () => {
    const links = Array.from({ length: 130_000 }, (_, i) => ({ record_id: 1, src_id: 0, input: 0, selector: `s${i}` }));
    const a = new GraphAssembler();
    a.add({ records: [rec(0), rec(1)], links, results: [] });
    const g = a.build();
    expect(g.nodes[1]!.links[0]!.size).toBe(130_000);
  });

  it('counts bytes across parts and refuses past limits.maxGraphBytes before anything is built', () => {
    const a = new GraphAssembler({ ...DEFAULT_GRAPH_LIMITS, maxGraphBytes: 1 << 20 });
    const part = (from: number) => ({
      records: [],
      links: Array.from({ length: 100 }, (_, i) => ({ record_id: 1, src_id: 0, input: 0, selector: `${from + i}`.padEnd(2000, '<') })),
      results: [],
    });
    a.add({ records: [rec(0), rec(1)], links: [], results: [] });
    for (let i = 0; i < 5; i++) a.add(part(i * 100)); // ~1 MB of selectors, each part far under the message limit
    const e = errOf(() => a.add(part(600)));
    expect([e.code, e.reason]).toEqual(['RESOURCE_EXHAUSTED', 'graph-too-large']);
    expect(wireGraphBytes(part(0))).toBeGreaterThan(200_000);
  });

  it('charges every input slot a link opens: 20 000 links to input 4 095 are refused, not built (82 million groups)', () => {
    const n = 20_000;
    const part = {
      records: Array.from({ length: n }, (_, i) => rec(i)),
      links: Array.from({ length: n - 1 }, (_, i) => ({ record_id: i + 1, src_id: 0, input: 4095, selector: '' })),
      results: [],
    };
    expect(wireGraphBytes(part)).toBeLessThan(DEFAULT_MAX_GRAPH_BYTES / 3); // short on the wire
    const e = errOf(() => new GraphAssembler().add(part));
    expect([e.code, e.reason]).toEqual(['RESOURCE_EXHAUSTED', 'graph-too-large']);
    // Slots are counted once per record: more links to the same inputs cost only their own bytes.
    const a = new GraphAssembler({ ...DEFAULT_GRAPH_LIMITS, maxGraphBytes: 200_000 });
    a.add({ records: [rec(0), rec(1)], links: [{ record_id: 1, src_id: 0, input: 4095, selector: '' }], results: [] });
    for (let i = 0; i < 50; i++) a.add({ records: [], links: [{ record_id: 1, src_id: 0, input: 4095 - i, selector: `s${i}` }], results: [] });
    expect(a.build().nodes[1]!.links).toHaveLength(4096);
  });

  it('decoding an answer bounds input slots too: an index past maxInputs, or more slots than a 16 MiB config can name, is refused', () => {
    const links = (n: number, input: number) => Array.from({ length: n }, (_, i) => ({ record_id: i + 1, src_id: 0, input, selector: '' }));
    const records = (n: number) => Array.from({ length: n }, (_, i) => rec(i));
    expect(errOf(() => graphFromWire({ records: records(2), links: links(1, 1_000_000), results: [] })).code).toBe('INVALID_ARGUMENT');
    const e = errOf(() => graphFromWire({ records: records(3001), links: links(3000, 4095), results: [] }));
    expect([e.code, e.reason]).toEqual(['RESOURCE_EXHAUSTED', 'graph-too-large']);
    expect(graphFromWire({ records: records(11), links: links(10, 4095), results: [] }).nodes[1]!.links).toHaveLength(4096);
  });

  it('a hint source of 2^32-1 costs nothing', () => {
    const a = new GraphAssembler();
    a.add({ records: [{ id: 0, digest: digestBytes('h'), hint: { source: 0xfffffffe, index: 0 } }], links: [], results: [] });
    const g = a.build();
    expect(g.newSource()).toBe(0xffffffff);
  });
});
