// Every cache a real BuildKit wrote must read back as its README says, and
// re-encode to BuildKit's own bytes.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeCacheConfig } from '../../src/cache/config.js';
import { summarize } from '../../src/cache/operations.js';
import { digestBytes } from '../../src/oci/digest.js';
import { BK, GRAPH_200, readmeMerges, readmeSummaries } from '../fixtures.js';
import { blobText, graphOf, loadFixture } from './helpers.js';

const summaries = readmeSummaries();

describe('fixtures written by BuildKit v0.12.5', () => {
  it('the README lists every fixture', () => {
    expect(summaries.size).toBe(7);
  });

  for (const [name, expected] of summaries) {
    it(`${name} gives the README's summary`, async () => {
      const { loaded } = await loadFixture(path.join(BK, name));
      expect(summarize(loaded)).toEqual(expected);
      expect(loaded.warnings).toEqual([]);
    });

    if (expected.config) {
      it(`${name}: decoding then encoding the config gives BuildKit's bytes`, async () => {
        const dir = path.join(BK, name);
        const { store } = await loadFixture(dir);
        const g = await graphOf(dir);
        const m = g.marshal();
        const encoded = encodeCacheConfig(m.config);
        expect(encoded).toBe(blobText(store, expected.config!));
        expect(digestBytes(encoded)).toBe(expected.config);
        // What an export writes: the flat form's own encoder.
        expect(digestBytes(m.flat.encode())).toBe(expected.config);
      });
    }
  }

  it('synthetic/graph-200 round-trips to its own config digest', async () => {
    const { loaded } = await loadFixture(GRAPH_200);
    expect(loaded.recordCount).toBe(200);
    const g = await graphOf(GRAPH_200);
    expect(digestBytes(encodeCacheConfig(g.marshal().config))).toBe(loaded.config!.digest);
  });

  for (const m of readmeMerges()) {
    it(`merging ${m.sources.map((s) => path.basename(s)).join(' + ')} gives BuildKit's merged config`, async () => {
      const g = await graphOf(...m.sources);
      expect(digestBytes(encodeCacheConfig(g.marshal().config))).toBe(m.config);
    });
  }

  it('an inline cache becomes a regular graph with the image layers as chains', async () => {
    const g = await graphOf(path.join(BK, 'inline-image'));
    const { config, descriptors } = g.marshal();
    expect(config.records).toHaveLength(11);
    expect(config.layers).toHaveLength(5);
    for (const d of descriptors.values()) {
      expect(d.annotations?.['containerd.io/uncompressed']).toMatch(/^sha256:/);
      expect(d.annotations?.['buildkit/createdat']).toMatch(/^2026-/);
      expect(d.annotations?.['buildkit/description']).toMatch(/# buildkit$/);
    }
  });
});
