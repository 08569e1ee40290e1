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
