// Taking the index lock can fail: another writer holds it past our wait, or
// something that is not the lock's directory sits in its place. Both are
// answered with a typed error naming the layout (never INTERNAL), the second
// at once rather than after 40 s of waiting and a failed "reclaim".
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { gcRepository } from '../../../src/cache/lifecycle/gc.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { INDEX_LOCK_RETRIES, withIndexLock } from '../../../src/store/local/layout.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';

const LOCK = '.bkcache-index.lock';
const normalRetries = INDEX_LOCK_RETRIES.value;
afterEach(() => {
  INDEX_LOCK_RETRIES.value = normalRetries;
});

/** A writable copy of a BuildKit layout (tag "latest"), and its manifest to tag again. */
async function layout() {
  const dir = path.join(tempDir('bkcache-lockerr-'), 'cache');
  cpSync(path.join(BK, 'local-index-max'), dir, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const store = new LocalStore(dir);
  return { dir, store, manifest: await store.resolve('latest') };
}

describe('the index lock held by another writer past the wait', () => {
  it('tag, prune and gc fail UNAVAILABLE naming the layout, and work once it is released', async () => {
    const { dir, store, manifest } = await layout();
    INDEX_LOCK_RETRIES.value = 2;
    let unlock!: () => void;
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const holder = withIndexLock(dir, async () => {
      holding();
      await new Promise<void>((r) => (unlock = r));
    });
    await held;
    const want = { code: 'UNAVAILABLE', reason: 'locked', message: expect.stringContaining(dir) };
    await expect(store.tag(manifest, 'other')).rejects.toMatchObject(want);
    await expect(store.prune()).rejects.toMatchObject(want);
    await expect(gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 0, now: new Date('2100-01-01') })).rejects.toMatchObject(want);
    unlock();
    await holder;
    await store.tag(manifest, 'other');
    expect((await store.tags()).map((t) => t.tag)).toEqual(['latest', 'other']);
  });
});

describe('something else in the lock\'s place', () => {
  const cases: [string, (lock: string, outside: string) => void][] = [
    ['a regular file, long untouched', (lock) => {
      writeFileSync(lock, 'x');
      const old = new Date(Date.now() - 3600_000);
      utimesSync(lock, old, old);
    }],
    ['a symlink to a directory outside the layout', (lock, outside) => {
      mkdirSync(path.join(outside, 'd'));
      symlinkSync(path.join(outside, 'd'), lock);
    }],
  ];
  for (const [what, make] of cases) {
    it(`${what}: refused at once with INVALID_ARGUMENT, nothing written or removed`, async () => {
      const { dir, store, manifest } = await layout();
      const outside = tempDir('bkcache-lockerr-out-');
      make(path.join(dir, LOCK), outside);
      const want = { code: 'INVALID_ARGUMENT', reason: 'bad-place', message: expect.stringContaining(LOCK) };
      await expect(store.tag(manifest, 'other')).rejects.toMatchObject(want);
      await expect(store.prune()).rejects.toMatchObject(want);
      expect((await store.tags()).map((t) => t.tag)).toEqual(['latest']);
      expect(readdirSync(dir)).toContain(LOCK);
      expect(readdirSync(outside)).toEqual(what.startsWith('a symlink') ? ['d'] : []);
    });
  }
});
