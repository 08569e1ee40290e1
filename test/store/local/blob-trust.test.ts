// A local store does not trust a blob file for being there (issue 10, item 5):
// exists() checks size and digest, a bad blob counts as absent and is
// replaced on push, and every read verifies, the prefix before an offset too.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyCache } from '../../../src/cache/operations.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { blobOf, readStream, uniqueBytes } from '../conformance.js';

const tmp = () => tempDir('bkcache-trust-');

async function storeWithBlob(size = 5000) {
  const store = new LocalStore(tmp(), { create: true });
  const bytes = uniqueBytes(size);
  const desc = blobOf(bytes);
  await store.push(desc, bytes);
  return { store, bytes, desc, file: store.blobPath(desc.digest) };
}

/** Same size, one byte different. */
function flipped(b: Buffer, at = b.length >> 1): Buffer {
  const c = Buffer.from(b);
  c[at]! ^= 0xff;
  return c;
}

const SPECIAL = ['symlink', 'directory', 'fifo'] as const;

/** Puts a symlink (to a good copy of the bytes elsewhere), a directory or a FIFO where a blob file is. */
function replaceBlob(file: string, bytes: Buffer, kind: (typeof SPECIAL)[number]): void {
  rmSync(file, { recursive: true, force: true });
  if (kind === 'symlink') {
    const elsewhere = path.join(tmp(), 'good-copy');
    writeFileSync(elsewhere, bytes);
    symlinkSync(elsewhere, file);
  } else if (kind === 'directory') mkdirSync(file);
  else execFileSync('mkfifo', [file]);
}

describe('exists() does not trust a bad blob', () => {
  it('is false for a blob of the wrong size, longer or shorter', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    writeFileSync(file, bytes.subarray(0, 100));
    expect(await store.exists(desc)).toBe(false);
    writeFileSync(file, Buffer.concat([bytes, Buffer.from('x')]));
    expect(await store.exists(desc)).toBe(false);
  });

  it('is false for a blob of the right size with wrong bytes, even after it was found good once', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    expect(await store.exists(desc)).toBe(true);
    writeFileSync(file, flipped(bytes));
    expect(await store.exists(desc)).toBe(false);
    writeFileSync(file, bytes);
    expect(await store.exists(desc)).toBe(true);
  });

  it('is false for a symlink, a directory or a FIFO where the blob should be', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    for (const kind of SPECIAL) {
      replaceBlob(file, bytes, kind);
      expect(await store.exists(desc), kind).toBe(false);
    }
  });
});

describe('push() replaces a bad blob atomically', () => {
  for (const [what, bad] of [
    ['same size, wrong bytes', (b: Buffer) => flipped(b)],
    ['truncated', (b: Buffer) => b.subarray(0, 10)],
    ['too long', (b: Buffer) => Buffer.concat([b, b])],
  ] as const) {
    it(`${what}: uploads again and the good bytes are read back`, async () => {
      const { store, bytes, desc, file } = await storeWithBlob();
      writeFileSync(file, bad(bytes));
      expect(await store.push(desc, bytes)).toEqual({ outcome: 'uploaded', bytes: bytes.length });
      expect(readFileSync(file).equals(bytes)).toBe(true);
      expect(await store.exists(desc)).toBe(true);
    });
  }

  it('a directory in the blob\'s place is refused with a typed error, not removed', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    replaceBlob(file, bytes, 'directory');
    await expect(store.push(desc, bytes)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a symlink in the blob\'s place is replaced by a file, its target untouched', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    const target = path.join(tmp(), 'target');
    writeFileSync(target, 'do not touch');
    rmSync(file);
    symlinkSync(target, file);
    expect((await store.push(desc, bytes)).outcome).toBe('uploaded');
    expect(readFileSync(target, 'utf8')).toBe('do not touch');
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it('re-exporting a cache over a layout with a corrupt layer rewrites that layer', async () => {
    const dest = tmp();
    const from = [parseCacheSpec(`type=local,src=${path.join(BK, 'local-index-max')}`)];
    const to = parseCacheSpec(`type=local,dest=${dest}`);
    const first = await copyCache(from, to);
    expect((await new LocalStore(dest).resolve('latest')).digest).toBe(first.manifest!.digest);
    // Corrupt the largest layer in place, keeping its size.
    const store = new LocalStore(dest);
    type Doc = { layers?: { digest: string; size: number }[]; manifests?: { digest: string; size: number }[] };
    const doc = JSON.parse((await readStream(await store.fetch(first.manifest!))).toString()) as Doc;
    const victim = [...(doc.layers ?? doc.manifests ?? [])].sort((a, b) => b.size - a.size)[0]!;
    const file = store.blobPath(victim.digest);
    const good = readFileSync(file);
    writeFileSync(file, flipped(good));
    const second = await copyCache(from, to);
    expect(second.stats.uploaded).toBe(1);
    expect(readFileSync(file).equals(good)).toBe(true);
  });
});

describe('fetch() verifies what it reads', () => {
  it('a wrong size fails at once with DATA_LOSS naming the digest', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    writeFileSync(file, bytes.subarray(0, 4000));
    await expect(store.fetch(desc)).rejects.toMatchObject({ code: 'DATA_LOSS', message: expect.stringContaining(desc.digest) });
  });

  it('wrong bytes fail the stream with DATA_LOSS, from offset 0 and from an offset past the damage', async () => {
    const { store, bytes, desc, file } = await storeWithBlob(300_000);
    writeFileSync(file, flipped(bytes, 10));
    await expect(readStream(await store.fetch(desc))).rejects.toMatchObject({ code: 'DATA_LOSS', message: expect.stringContaining(desc.digest) });
    // The damaged byte is before the offset: only hashing the prefix finds it.
    await expect(readStream(await store.fetch(desc, { offset: 200_000 }))).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });

  it('a good blob reads back whole and from any offset', async () => {
    const { store, bytes, desc } = await storeWithBlob(300_000);
    for (const off of [0, 1, 65_536, 299_999, 300_000]) expect((await readStream(await store.fetch(desc, { offset: off }))).equals(bytes.subarray(off))).toBe(true);
    await expect(store.fetch(desc, { offset: 300_001 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a reader that starts late still gets the error; nothing is left unhandled', async () => {
    const { store, bytes, desc, file } = await storeWithBlob(3 << 20);
    writeFileSync(file, flipped(bytes, 5));
    const stream = await store.fetch(desc, { offset: 1 << 20 });
    // Let the file be read (and fail) before anyone listens.
    stream.pause();
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    await expect(readStream(stream)).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });

  it('a symlink, a directory or a FIFO in a blob\'s place is refused, never followed or waited on', async () => {
    const { store, bytes, desc, file } = await storeWithBlob();
    for (const kind of SPECIAL) {
      replaceBlob(file, bytes, kind);
      await expect(store.fetch(desc), kind).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});
