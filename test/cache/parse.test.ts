import { describe, expect, it } from 'vitest';
import { decodeCacheConfig, encodeCacheConfig } from '../../src/cache/config.js';
import { CacheGraph } from '../../src/cache/graph.js';
import { parseConfig, type DescriptorMap } from '../../src/cache/parse.js';
import { BkError } from '../../src/errors.js';
import { layerDesc } from './random-graph.js';

const dg = (c: string) => 'sha256:' + c.repeat(64);
const L1 = layerDesc(1);
const L2 = layerDesc(2);
const provider: DescriptorMap = new Map([
  [L1.digest, L1],
  [L2.digest, L2],
]);

function parseErr(json: unknown): BkError {
  try {
    parseConfig(new CacheGraph(), decodeCacheConfig(JSON.stringify(json)), provider);
  } catch (err) {
    expect(err).toBeInstanceOf(BkError);
    return err as BkError;
  }
  throw new Error('expected an error');
}

describe('decodeCacheConfig', () => {
  it("reads an absent parent as 0, Go's zero value", () => {
    const cc = decodeCacheConfig(`{"layers":[{"blob":"${L1.digest}","parent":-1},{"blob":"${L2.digest}"}]}`);
    expect(cc.layers.map((l) => l.parent)).toEqual([-1, 0]);
    expect(encodeCacheConfig(cc)).toBe(`{"layers":[{"blob":"${L1.digest}","parent":-1},{"blob":"${L2.digest}"}]}`);
  });
  it('ignores unknown fields and matches keys case-insensitively', () => {
    const cc = decodeCacheConfig(`{"Records":[{"DIGEST":"${dg('a')}","extra":1}],"x":true}`);
    expect(cc.records[0]!.digest).toBe(dg('a'));
  });
  it('writes the zero time for a result without createdAt', () => {
    const cc = decodeCacheConfig(`{"records":[{"layers":[{"layer":0}]}]}`);
    expect(encodeCacheConfig(cc)).toBe('{"records":[{"layers":[{"layer":0,"createdAt":"0001-01-01T00:00:00Z"}]}]}');
  });
  it('rejects malformed JSON and wrong types with INVALID_ARGUMENT', () => {
    for (const bad of ['{', '[]', '{"layers":{}}', '{"layers":[{"parent":"x"}]}', '{"records":[{"layers":[{"createdAt":"nope"}]}]}']) {
      try {
        decodeCacheConfig(bad);
        expect.unreachable(bad);
      } catch (err) {
        expect((err as BkError).code, bad).toBe('INVALID_ARGUMENT');
      }
    }
  });
});

describe('parseConfig rejects what BuildKit rejects', () => {
  it('looping records', () => {
    const e = parseErr({ records: [{ digest: dg('a'), inputs: [[{ link: 1 }]] }, { digest: dg('b'), inputs: [[{ link: 0 }]] }] });
    expect(e.reason).toBe('looping-record');
  });
  it('a record linking to itself', () => {
    expect(parseErr({ records: [{ digest: dg('a'), inputs: [[{ link: 0 }]] }] }).reason).toBe('looping-record');
  });
  it('looping layers', () => {
    const e = parseErr({
      layers: [
        { blob: L1.digest, parent: 1 },
        { blob: L2.digest, parent: 0 },
      ],
      records: [{ digest: dg('a'), layers: [{ layer: 0 }] }],
    });
    expect(e.reason).toBe('looping-layer');
  });
  it('out-of-range record and layer indexes', () => {
    expect(parseErr({ records: [{ digest: dg('a'), inputs: [[{ link: 5 }]] }] }).reason).toBe('record-index-out-of-range');
    expect(parseErr({ records: [{ digest: dg('a'), inputs: [[{ link: -1 }]] }] }).reason).toBe('record-index-out-of-range');
    expect(parseErr({ layers: [{ blob: L1.digest, parent: -1 }], records: [{ digest: dg('a'), layers: [{ layer: 3 }] }] }).reason).toBe(
      'layer-index-out-of-range',
    );
    expect(parseErr({ layers: [{ blob: L1.digest, parent: 7 }], records: [{ digest: dg('a'), layers: [{ layer: 0 }] }] }).reason).toBe(
      'layer-index-out-of-range',
    );
    expect(
      parseErr({ layers: [{ blob: L1.digest, parent: -1 }], records: [{ digest: dg('a'), chains: [{ layers: [0, 4] }] }] }).reason,
    ).toBe('layer-index-out-of-range');
  });
});

describe('parseConfig drops results whose blobs are absent', () => {
  it('keeps the record, drops the result', () => {
    const g = new CacheGraph();
    const missing = dg('f');
    parseConfig(
      g,
      decodeCacheConfig(
        JSON.stringify({
          layers: [
            { blob: missing, parent: -1 },
            { blob: L1.digest, parent: 0 },
            { blob: L2.digest, parent: -1 },
          ],
          records: [
            { digest: dg('a'), layers: [{ layer: 1, createdAt: '2026-01-01T00:00:00Z' }] },
            { digest: dg('b'), layers: [{ layer: 2, createdAt: '2026-01-01T00:00:00Z' }] },
          ],
        }),
      ),
      provider,
    );
    const { config } = g.marshal();
    expect(config.records.map((r) => [r.digest, r.results.length])).toEqual([
      [dg('a'), 0],
      [dg('b'), 1],
    ]);
    expect(config.layers).toEqual([{ blob: L2.digest, parent: -1 }]);
  });
});
