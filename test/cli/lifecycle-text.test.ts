// The lifecycle commands' text output shows text a cache or a registry
// wrote (record keys, selectors, layer descriptions, tag names): none of it
// may reach the terminal as control characters or as lines of its own.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatDiff, lifecycleCommands } from '../../src/cli/lifecycle.js';
import type { DiffReport } from '../../src/cache/lifecycle/diff.js';
import { LocalStore } from '../../src/store/local/index.js';
import { chainGraph, writeLocal } from '../cache/lifecycle/helpers.js';
import { tempDir } from '../tmp.js';

const EVIL = '\x1b]0;owned\x07\x1b[2J\r\nforged line\u2028\u202e';

/** Nothing a terminal acts on: no C0/C1 control but the newlines we write, no separators or bidi overrides. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

async function stdoutOf(run: () => Promise<number>): Promise<{ code: number; text: string }> {
  let text = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((text += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((text += String(s)), true));
  const code = await run();
  vi.restoreAllMocks();
  return { code, text };
}

afterEach(() => vi.restoreAllMocks());

describe('lifecycle text output of hostile text', () => {
  it('du: a layer description with escapes and newlines stays on its result line', async () => {
    const { graph, blobs } = chainGraph(3, { prefix: EVIL });
    const dir = tempDir('bkcache-text-');
    await writeLocal(graph, blobs, dir, 'latest');
    const { code, text } = await stdoutOf(() => lifecycleCommands.du!.run(['--import-cache', `type=local,src=${dir}`]));
    expect(code).toBe(0);
    expect(text).not.toMatch(CONTROL);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(2 + 3); // total, header, one line per result
    expect(lines.filter((l) => l.startsWith('forged'))).toEqual([]);
    expect(lines[2]).toContain('\\u001b]0;owned\\u0007');
  });

  it('gc: a tag name with escapes is shown escaped', async () => {
    const { graph, blobs } = chainGraph(1, { start: new Date('2020-01-01T00:00:00Z') });
    const dir = tempDir('bkcache-text-');
    await writeLocal(graph, blobs, dir, 'latest');
    const store = new LocalStore(dir);
    await store.tag((await store.tags())[0]!.desc, `x${EVIL}`);
    const { code, text } = await stdoutOf(() =>
      lifecycleCommands.gc!.run(['--repository', `type=local,src=${dir}`, '--older-than', '1d', '--keep', 'latest', '--dry-run']),
    );
    expect(code).toBe(0);
    expect(text).not.toMatch(CONTROL);
    expect(text.trimEnd().split('\n')).toHaveLength(2);
  });

  it('diff: keys, selectors and descriptions are escaped', () => {
    const r: DiffReport = {
      common: 1,
      onlyA: 1,
      onlyB: 1,
      divergences: [
        {
          record: `b${EVIL}`,
          depth: 1,
          layers: [{ digest: 'sha256:' + 'a'.repeat(64), size: 5 }],
          description: `RUN ${EVIL}`,
          replaces: { record: `a${EVIL}`, differences: [{ what: 'selector', input: 0, a: `s${EVIL}`, b: `t${EVIL}` }] },
        },
      ],
    } as DiffReport;
    const text = formatDiff(r, (n) => `${n} B`);
    expect(text).not.toMatch(CONTROL);
    expect(text.split('\n')).toHaveLength(5);
  });
});
