// An index.json of many entries naming one manifest (many tags on one cache,
// or a hand-made list: index.json may be 16 MiB) is walked once per distinct
// manifest, not once per entry: prune read and hashed the manifest for every
// entry, twice (before and under the index lock), so 50 000 tags took prune
// 40 s, most of it holding the lock every writer of the layout waits for.
import { execFileSync } from 'node:child_process';
import { cpSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalStore } from '../../../src/store/local/index.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** local-index-max with its one entry repeated `n` times under tags t0..t(n-1). */
function manyTags(n: number): { dir: string; manifest: string } {
  const dir = path.join(tempDir('bkcache-many-'), 'cache');
  cpSync(path.join(BK, 'local-index-max'), dir, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const file = path.join(dir, 'index.json');
  const index = JSON.parse(readFileSync(file, 'utf8'));
  const e = index.manifests[0];
  index.manifests = Array.from({ length: n }, (_, i) => ({ ...e, annotations: { 'org.opencontainers.image.ref.name': `t${i}` } }));
  writeFileSync(file, JSON.stringify(index));
  return { dir, manifest: path.join(dir, 'blobs', 'sha256', e.digest.slice(7)) };
}

/** Counts the opens of `file` while `fn` runs. */
async function opensOf(file: string, fn: () => Promise<unknown>): Promise<number> {
  const open = vi.spyOn(fsp, 'open');
  await fn();
  const n = open.mock.calls.filter((c) => c[0] === file).length;
  open.mockRestore();
  return n;
}

describe('prune of an index.json with many entries naming one manifest', () => {
  it('reads the manifest once per walk (before the lock and under it), not once per entry', async () => {
    const { dir, manifest } = manyTags(2000);
    const store = new LocalStore(dir);
    expect(await opensOf(manifest, () => store.prune({ dryRun: true }))).toBeLessThanOrEqual(2);
    let res;
    expect(await opensOf(manifest, async () => (res = await store.prune()))).toBeLessThanOrEqual(2);
    expect(res).toMatchObject({ deleted: 0, kept: 13 });
  });

  it('an entry naming that manifest with another size still refuses the prune', async () => {
    const { dir } = manyTags(3);
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    const bad = { ...index.manifests[0], size: index.manifests[0].size + 1, annotations: { 'org.opencontainers.image.ref.name': 'liar' } };
    index.manifests.push(bad);
    writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
    await expect(new LocalStore(dir).prune()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('entry 3 (tag "liar")') });
  });
});
