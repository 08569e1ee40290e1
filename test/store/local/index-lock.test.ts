import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { INDEX_LOCK_STALE_MS, withIndexLock } from '../../../src/store/local/layout.js';
import { blobOf, manifestOf, uniqueBytes } from '../conformance.js';
import { tempDir } from '../../tmp.js';

const LOCK = '.bkcache-index.lock';
const normalStale = INDEX_LOCK_STALE_MS.value;
afterEach(() => {
  INDEX_LOCK_STALE_MS.value = normalStale;
});

describe('the index lock, lost while held', () => {
  it('is reported to the holder as UNAVAILABLE instead of crashing the process, and the layout stays usable', async () => {
    const dir = tempDir('bkcache-lock-');
    const store = new LocalStore(dir, { create: true });
    const config = uniqueBytes(10);
    const cd = blobOf(config, 'application/vnd.buildkit.cacheconfig.v0');
    const m = manifestOf(cd, []);
    await store.push(cd, config);
    await store.push(m.desc, m.bytes);
    await store.tag(m.desc, 'before');
    const index = readFileSync(path.join(dir, 'index.json'), 'utf8');
    // proper-lockfile's floor: the lock is refreshed every second.
    INDEX_LOCK_STALE_MS.value = 2000;
    let checks = 0;
    const run = withIndexLock(dir, async (held) => {
      // Someone (a person cleaning up, another process that took the lock for stale) removes it.
      rmSync(path.join(dir, LOCK), { recursive: true });
      // The next refresh finds it gone: from then on held() refuses.
      while (checks < 1200) {
        held();
        checks++;
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('UNAVAILABLE');
    expect((err as BkError).message).toMatch(/lost the index lock/);
    expect(checks).toBeGreaterThan(0);
    expect(checks).toBeLessThan(1200);
    expect(readFileSync(path.join(dir, 'index.json'), 'utf8')).toBe(index);
    // The lock can be taken again.
    await store.tag(m.desc, 'after');
    expect((await store.tags()).map((t) => t.tag)).toEqual(['before', 'after']);
    rmSync(dir, { recursive: true, force: true });
  });
});
