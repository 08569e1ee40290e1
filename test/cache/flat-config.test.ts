import { describe, expect, it } from 'vitest';
import { encodeCacheConfig } from '../../src/cache/config.js';
import { FlatConfig } from '../../src/cache/flat-config.js';
import type { GraphSpec } from './random-graph.js';
import { buildGraph, randomSpec } from './random-graph.js';
import { rng } from '../../integration/harness/rng.js';

// Strings json.Marshal escapes or writes as UTF-8: quotes, backslashes, the HTML characters, control characters,
// U+2028/9, non-ASCII, an astral character, lone surrogates; and the empty string (omitted fields).
const AWKWARD = ['', 'a"b', 'back\\slash', '<tag>&amp;', 'tab\there\nline\r', '\u0000\u001f', 'x\u2028y\u2029', 'héllo', '𝄞', 'lone\ud800', '\udc00tail', '\u007f'];

/** randomSpec's graph with some selectors replaced by awkward strings (keys are digests and times RFC 3339: a graph refuses others). */
function awkwardSpec(seed: number): GraphSpec {
  const spec = randomSpec(seed, 40, { repeatDigests: seed % 2 === 0 });
  const r = rng(seed * 7919);
  const pick = () => AWKWARD[Math.floor(r() * AWKWARD.length)]!;
  for (const rec of spec.records) {
    for (const l of rec.links) if (r() < 0.3) l.selector = pick();
  }
  return spec;
}

describe('FlatConfig', () => {
  it('encodes to the bytes the object encoder writes for the same config, on 300 random graphs with awkward selectors', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const m = buildGraph(awkwardSpec(seed), seed % 3).marshal();
      const want = Buffer.from(encodeCacheConfig(m.flat.toConfig()), 'utf8');
      expect(m.flat.encode().equals(want), `seed ${seed}`).toBe(true);
      // The lazily built objects are the same config.
      expect(m.config).toEqual(m.flat.toConfig());
      expect(m.flat.records).toBe(m.config.records.length);
      expect(m.flat.layers).toBe(m.config.layers.length);
    }
  });

  it('writes what json.Marshal writes for layer parents, omitted fields and multi-link groups', () => {
    const flat = new FlatConfig({
      layerBlob: ['sha256:a', '', 'sha256:c'],
      layerParent: Int32Array.from([-1, 0, 1]),
      digest: ['sha256:r0', '', 'sha256:r2'],
      resultLayer: Int32Array.from([2, -1, -1]),
      createdAt: ['2026-01-01T00:00:00Z', '', ''],
      groupStart: Int32Array.from([0, 0, 1, 3]),
      linkStart: Int32Array.from([0, 2, 3, 4]),
      link: Int32Array.from([0, 0, 1, 0]),
      selector: ['', 's<1>', '', 'x'],
    });
    expect(flat.encode().toString('utf8')).toBe(
      '{"layers":[{"blob":"sha256:a","parent":-1},{},{"blob":"sha256:c","parent":1}],' +
        '"records":[{"layers":[{"layer":2,"createdAt":"2026-01-01T00:00:00Z"}],"digest":"sha256:r0"},' +
        '{"inputs":[[{"link":0},{"selector":"s\\u003c1\\u003e","link":0}]]},' +
        '{"digest":"sha256:r2","inputs":[[{"link":1}],[{"selector":"x","link":0}]]}]}',
    );
    expect(flat.encode().toString('utf8')).toBe(encodeCacheConfig(flat.toConfig()));
  });

  it('writes an empty config as {}, and grows past its first estimate', () => {
    const empty = new FlatConfig({
      layerBlob: [],
      layerParent: new Int32Array(0),
      digest: [],
      resultLayer: new Int32Array(0),
      createdAt: [],
      groupStart: Int32Array.from([0]),
      linkStart: Int32Array.from([0]),
      link: new Int32Array(0),
      selector: [],
    });
    expect(empty.encode().toString()).toBe('{}');
    // One selector far longer than the estimate (160 bytes a record), half of it needing escapes.
    const long = 'é<'.repeat(100_000);
    const flat = new FlatConfig({
      layerBlob: [],
      layerParent: new Int32Array(0),
      digest: ['d0', 'd1'],
      resultLayer: Int32Array.from([-1, -1]),
      createdAt: ['', ''],
      groupStart: Int32Array.from([0, 0, 1]),
      linkStart: Int32Array.from([0, 1]),
      link: Int32Array.from([0]),
      selector: [long],
    });
    const bytes = flat.encode();
    expect(bytes.toString('utf8')).toBe(encodeCacheConfig(flat.toConfig()));
    expect(JSON.parse(bytes.toString('utf8')).records[1].inputs[0][0].selector).toBe(long);
  });
});
