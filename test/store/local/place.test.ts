// Writes go only to directories on a real file system, and fail fast with a
// typed error everywhere else (issue 10, item 9: dest=/proc/self/x spun a
// libuv thread forever). Every case here hung or wrote somewhere wrong before.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStore } from '../../../src/store/local/index.js';
import { fsError } from '../../../src/store/local/place.js';
import { tempDir } from '../../tmp.js';
import { blobOf, manifestOf, uniqueBytes } from '../conformance.js';

const tmp = () => tempDir('bkcache-place-');

/** A whole small export: layer, config, manifest, tag. */
async function exportTo(dir: string): Promise<void> {
  const store = new LocalStore(dir, { create: true });
  const layer = uniqueBytes(100);
  const cfg = uniqueBytes(50);
  await store.push(blobOf(layer), layer);
  await store.push(blobOf(cfg, 'application/vnd.buildkit.cacheconfig.v0'), cfg);
  const m = manifestOf(blobOf(cfg, 'application/vnd.buildkit.cacheconfig.v0'), [blobOf(layer)]);
  await store.push(m.desc, m.bytes);
  await store.tag(m.desc, 'latest');
}

const refused = { code: 'INVALID_ARGUMENT', reason: 'bad-place' };

describe('export destinations that are not directories on a real file system', () => {
  const places: [string, () => string][] = [
    ['under /proc/self', () => '/proc/self/x'],
    ['/proc itself', () => '/proc'],
    ['a new directory under /proc', () => '/proc/bkcache-test/deeper'],
    ['under /sys', () => '/sys/kernel/bkcache-test'],
    ['a character device', () => '/dev/null'],
    ['under a character device', () => '/dev/null/x'],
    ['a regular file', () => {
      const f = path.join(tmp(), 'file');
      writeFileSync(f, 'x');
      return f;
    }],
    ['under a regular file', () => {
      const f = path.join(tmp(), 'file');
      writeFileSync(f, 'x');
      return path.join(f, 'a', 'b');
    }],
    ['a FIFO', () => {
      const f = path.join(tmp(), 'fifo');
      execFileSync('mkfifo', [f]);
      return f;
    }],
  ];
  for (const [what, place] of places) {
    it(`${what}: refused with INVALID_ARGUMENT, nothing written`, async () => {
      const dir = place();
      await expect(exportTo(dir)).rejects.toMatchObject(refused);
    });
  }

  it('a new directory several levels deep on a real file system is made', async () => {
    const dir = path.join(tmp(), 'a', 'b', 'c');
    await exportTo(dir);
    expect(readdirSync(dir).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('a symlinked destination directory the operator made is followed', async () => {
    const real = tmp();
    const link = path.join(tmp(), 'link');
    symlinkSync(real, link);
    await exportTo(link);
    expect(existsSync(path.join(real, 'index.json'))).toBe(true);
  });
});

describe('symlinks and special files inside a layout', () => {
  const inside: [string, (dir: string, elsewhere: string) => void][] = [
    ['blobs is a symlink', (dir, elsewhere) => symlinkSync(elsewhere, path.join(dir, 'blobs'))],
    ['blobs/sha256 is a symlink', (dir, elsewhere) => {
      mkdirSync(path.join(dir, 'blobs'));
      symlinkSync(elsewhere, path.join(dir, 'blobs', 'sha256'));
    }],
    ['index.json is a symlink', (dir, elsewhere) => symlinkSync(path.join(elsewhere, 'idx'), path.join(dir, 'index.json'))],
    ['oci-layout is a symlink', (dir, elsewhere) => symlinkSync(path.join(elsewhere, 'lay'), path.join(dir, 'oci-layout'))],
    ['index.json is a FIFO', (dir) => execFileSync('mkfifo', [path.join(dir, 'index.json')])],
  ];
  for (const [what, make] of inside) {
    it(`${what}: the export is refused and nothing lands outside the layout`, async () => {
      const dir = tmp();
      const elsewhere = tmp();
      writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}', { flag: 'a' });
      if (what.startsWith('oci-layout')) execFileSync('rm', [path.join(dir, 'oci-layout')]);
      make(dir, elsewhere);
      await expect(exportTo(dir)).rejects.toMatchObject(refused);
      expect(readdirSync(elsewhere)).toEqual([]);
    });
  }

  it('an import whose index.json is a FIFO is refused, not waited on', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    mkdirSync(path.join(dir, 'blobs'));
    execFileSync('mkfifo', [path.join(dir, 'index.json')]);
    await expect(new LocalStore(dir).resolve('latest')).rejects.toMatchObject(refused);
  });

  it("another store's directory (blobs/ without oci-layout or index.json) is not made a layout", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(path.join(dir, 'blobs', 'sha256', 'a'.repeat(64)), 'buildkitd blob');
    await expect(exportTo(dir)).rejects.toMatchObject(refused);
    expect(readdirSync(dir)).toEqual(['blobs']);
  });

  it('an import from /proc is refused, and a missing directory is NOT_FOUND (a cache miss)', async () => {
    await expect(new LocalStore('/proc/self').resolve('latest')).rejects.toMatchObject(refused);
    await expect(new LocalStore('/proc/self/nonexistent').resolve('latest')).rejects.toMatchObject(refused);
    await expect(new LocalStore(path.join(tmp(), 'nonexistent')).resolve('latest')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe("the disk's refusals are typed, never INTERNAL", () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: from the kernel`), { code });
  it.each([
    ['EACCES', 'FAILED_PRECONDITION'],
    ['EPERM', 'FAILED_PRECONDITION'],
    ['EROFS', 'FAILED_PRECONDITION'],
    ['ENOSPC', 'RESOURCE_EXHAUSTED'],
    ['EDQUOT', 'RESOURCE_EXHAUSTED'],
    ['ENOTDIR', 'INVALID_ARGUMENT'],
    ['EISDIR', 'INVALID_ARGUMENT'],
    ['ELOOP', 'INVALID_ARGUMENT'],
    ['ENOENT', 'NOT_FOUND'],
  ])('%s -> %s', (code, want) => {
    const e = fsError(errno(code), 'blob x');
    expect(e.code).toBe(want);
  });
});
