import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { toDot, toMermaid } from '../../../src/cache/lifecycle/picture.js';
import type { LoadedCache } from '../../../src/cache/import.js';
import { BK, GRAPH_200, readmeSummaries } from '../../fixtures.js';
import { loadFixture } from '../helpers.js';

const fixtures = [...[...readmeSummaries().keys()].map((n) => path.join(BK, n)), GRAPH_200];

/** Renders with Debian's graphviz: a syntax error makes dot exit non-zero. */
function renderSvg(dot: string): string {
  return execFileSync('dot', ['-Tsvg'], { input: dot, encoding: 'utf8', maxBuffer: 64 << 20 });
}

describe('pictures', () => {
  for (const dir of fixtures) {
    it(`${path.basename(dir)}: DOT that graphviz renders, one node per record and one edge per link`, async () => {
      const { loaded } = await loadFixture(dir);
      const dot = toDot(loaded);
      const svg = renderSvg(dot);
      expect(svg).toContain('<svg');
      const records = loaded.parts.reduce((s, p) => s + p.config.records.length, 0);
      const links = loaded.parts.reduce((s, p) => s + p.config.records.reduce((t, r) => t + r.inputs.flat().length, 0), 0);
      expect((svg.match(/class="node"/g) ?? []).length).toBe(records);
      expect((svg.match(/class="edge"/g) ?? []).length).toBe(links);
    });

    it(`${path.basename(dir)}: Mermaid flowchart with every record and link`, async () => {
      const { loaded } = await loadFixture(dir);
      const m = toMermaid(loaded);
      expect(m.startsWith('flowchart TB\n')).toBe(true);
      const links = loaded.parts.reduce((s, p) => s + p.config.records.reduce((t, r) => t + r.inputs.flat().length, 0), 0);
      expect((m.match(/ -->\|/g) ?? []).length).toBe(links);
    });
  }

  it('labels links with input and selector, results with layer sizes', async () => {
    const { loaded } = await loadFixture(path.join(BK, 'registry-index-oci-max'));
    const dot = toDot(loaded);
    expect(dot).toMatch(/-> p0r\d+ \[label="in 1 a5bcd92e5ab3\\l"\]/);
    expect(dot).toContain('d8796ef752bf 1,064,330 B');
  });

  it('any text in keys, selectors and layer blobs: DOT that renders to clean SVG, Mermaid labels that stay labels', () => {
    const hostile = [
      'a\u0000b',
      '\u0001\u0008\u000b\u000c\u001b[31m\u007f\u0085',
      'x\u2028y\u2029z',
      '\u202eevil\u200b',
      '\ud800lone',
      'q"];\nz -> y [label="\\',
      'a]-->b}|c|d;e',
      '%%{init: {"theme":"dark"}}%%',
      '`**md**` &lt;b&gt; <b>x</b> #35;',
      'sha256:"]\\l\u0000' + 'z'.repeat(100),
      '\\N\\G\\E\\L',
    ];
    const records = hostile.map((digest, i) => ({
      digest,
      inputs: i === 0 ? [] : [[{ link: i - 1, selector: hostile[(i + 3) % hostile.length]! }]],
      results: [{ layer: i, createdAt: '2026-01-01T00:00:00Z' }],
      chains: [],
    }));
    const loaded: LoadedCache = {
      kind: 'index',
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifest: { mediaType: '', digest: 'sha256:' + '0'.repeat(64), size: 1 },
      config: null,
      layerCount: hostile.length,
      recordCount: hostile.length,
      warnings: [],
      parts: [{ config: { layers: hostile.map((blob, i) => ({ blob, parent: i - 1 })), records }, provider: new Map() }],
    };
    const svg = renderSvg(toDot(loaded));
    expect((svg.match(/class="node"/g) ?? []).length).toBe(hostile.length);
    expect((svg.match(/class="edge"/g) ?? []).length).toBe(hostile.length - 1);
    // XML 1.0 allows no C0 control but tab and newline, and graphviz copies label text as is.
    expect(svg).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u2028\u2029\u202e]/);
    const lines = toMermaid(loaded).trimEnd().split('\n');
    expect(lines[0]).toBe('flowchart TB');
    const label = '"(?:[A-Za-z0-9 .,:/_+=@-]|#\\d+;|<br/>)*"';
    for (const l of lines.slice(1, -2)) expect(l).toMatch(new RegExp(`^  (p0r\\d+\\[${label}\\]|p0r\\d+ -->\\|${label}\\| p0r\\d+)$`));
    expect(lines.slice(-2)).toEqual(['  classDef result fill:#e8f0fe', `  class ${hostile.map((_, i) => `p0r${i}`).join(',')} result`]);
  });

  it('a config of long chains under many records: each label lists at most 128 layers', () => {
    const depth = 2000;
    const layers = Array.from({ length: depth }, (_, i) => ({ blob: `sha256:${String(i).padStart(64, '0')}`, parent: i - 1 }));
    const records = Array.from({ length: 200 }, (_, i) => ({ digest: `sha256:${String(i).padStart(64, 'f')}`, inputs: [], results: [{ layer: depth - 1, createdAt: '2026-01-01T00:00:00Z' }], chains: [] }));
    const loaded: LoadedCache = {
      kind: 'index',
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifest: { mediaType: '', digest: 'sha256:' + '0'.repeat(64), size: 1 },
      config: null,
      layerCount: depth,
      recordCount: records.length,
      warnings: [],
      parts: [{ config: { layers, records }, provider: new Map() }],
    };
    const dot = toDot(loaded);
    // 200 records × 2000 layers was 400 000 label lines; now 200 × (128 + 2).
    expect(dot.split('\\l').length).toBeLessThan(200 * 131 + 10);
    expect(dot).toContain('… lower layers not shown');
    expect(toMermaid(loaded).split('<br/>').length).toBeLessThan(200 * 131 + 10);
  });

  it('escapes hostile text in keys and selectors', () => {
    const evil = 'x"];\ninjected -> y [label="\\';
    const loaded: LoadedCache = {
      kind: 'index',
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifest: { mediaType: '', digest: 'sha256:' + '0'.repeat(64), size: 1 },
      config: null,
      layerCount: 0,
      recordCount: 2,
      warnings: [],
      parts: [
        {
          config: {
            layers: [],
            records: [
              { digest: evil, inputs: [], results: [], chains: [] },
              { digest: `${evil}<b>"`, inputs: [[{ link: 0, selector: evil }]], results: [], chains: [] },
            ],
          },
          provider: new Map(),
        },
      ],
    };
    const svg = renderSvg(toDot(loaded));
    expect((svg.match(/class="node"/g) ?? []).length).toBe(2);
    const lines = toMermaid(loaded).trimEnd().split('\n').slice(1);
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(/^ {2}(p0r\d+\["[^"<>]*"\]|p0r\d+ -->\|"[^"<>]*"\| p0r\d+)$/);
  });
});
