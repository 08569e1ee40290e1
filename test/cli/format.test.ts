import { describe, expect, it } from 'vitest';
import { formatRecordsTree } from '../../src/cli/format.js';
import type { LoadedCache } from '../../src/cache/import.js';

function loadedOf(records: LoadedCache['parts'][0]['config']['records']): LoadedCache {
  return {
    kind: 'index',
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifest: { mediaType: '', digest: 'sha256:' + '0'.repeat(64), size: 1 },
    config: null,
    layerCount: 0,
    recordCount: records.length,
    warnings: [],
    parts: [{ config: { layers: [], records }, provider: new Map() }],
  };
}

describe('inspect records tree', () => {
  it('a chain of 100 000 records: no stack overflow, one line each, indentation bounded', () => {
    const n = 100_000;
    const records = Array.from({ length: n }, (_, i) => ({
      digest: `sha256:${i.toString(16).padStart(64, '0')}`,
      inputs: i === 0 ? [] : [[{ link: i - 1, selector: '' }]],
      results: [],
      chains: [],
    }));
    const lines = formatRecordsTree(loadedOf(records)).split('\n');
    expect(lines).toHaveLength(n);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(200);
    expect(lines[n - 1]).toContain(`(depth ${n - 1}) [in 0] #${n - 1} `);
    expect(lines[3]).toBe('      └─[in 0] #3 000000000000');
  });

  it('keys and selectors with control characters are shown escaped, one record a line', () => {
    const evil = 'k\x1b[2J\nforged\u202e';
    const lines = formatRecordsTree(
      loadedOf([
        { digest: evil, inputs: [], results: [], chains: [] },
        { digest: 'b', inputs: [[{ link: 0, selector: evil }]], results: [], chains: [] },
      ]),
    ).split('\n');
    expect(lines).toEqual(['#0 k\\u001b[2J\\u000aforged\\u202e', '└─[in 0 sel=k\\u001b[2J\\u000aforged\\u202e] #1 b']);
  });
});
