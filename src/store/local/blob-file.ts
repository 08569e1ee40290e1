// Blob files of a layout are not trusted for being there. A disk, a copy
// tool or another program can leave a blob with the wrong size or bytes,
// and a store that skips uploads of "existing" blobs would then keep the
// corrupt one forever. How deep each check goes, and why:
// - exists(): the size must match (one lstat), and the bytes must hash to
//   the digest once per file version. A full hash on every exists() would
//   make every re-export read the whole cache; a size check alone misses a
//   flipped bit. So the result of a hash is remembered per file identity
//   (device, inode, size, mtime and ctime in ns): any rewrite, rename over
//   or touch makes the file hash again. Files this process wrote itself were
//   hashed while written and are remembered without a second read.
//   Costs: a re-export reads each existing blob once per process (never
//   more than copying it would); a daemon hashes each blob once in its life.
//   What the memo cannot see (bit rot under an unchanged inode) is caught
//   by reads, which always verify.
// - fetch(): always hashes the whole file, the prefix before an offset
//   included, and fails with DATA_LOSS naming the digest.
import { createReadStream, promises as fs, type BigIntStats } from 'node:fs';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { BkError, dataLoss, invalidArgument } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { algorithmOf, newHasher } from '../../oci/digest.js';
import { verified } from '../content.js';
import { openRegular } from './place.js';

/** Remembered verifications, path -> identity; oldest dropped first past the cap. */
const intact = new Map<string, string>();
const MAX_REMEMBERED = 100_000;
/** Hashes in progress, so concurrent exists() of one blob read it once. */
const hashing = new Map<string, Promise<boolean>>();

function identity(st: BigIntStats, digest: string): string {
  return `${digest} ${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
}

function remember(file: string, id: string): void {
  intact.delete(file);
  intact.set(file, id);
  if (intact.size > MAX_REMEMBERED) intact.delete(intact.keys().next().value!);
}

/** Records that `file` (just written and verified by this process) holds `digest`. */
export async function rememberIntact(file: string, digest: string): Promise<void> {
  const st = await fs.lstat(file, { bigint: true }).catch(() => undefined);
  if (st?.isFile()) remember(file, identity(st, digest));
}

/** Forgets what was remembered of `file` (deleted or replaced). */
export function forgetIntact(file: string): void {
  intact.delete(file);
}

/** True when `file` is a regular file of the descriptor's size; no content read. */
export async function sizeMatches(file: string, desc: Descriptor): Promise<boolean> {
  const st = await fs.lstat(file).catch(() => undefined);
  return st?.isFile() === true && st.size === desc.size;
}

/** True when `file` is a regular file holding exactly the descriptor's content (see the top of this file). */
export async function blobIntact(file: string, desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const st = await fs.lstat(file, { bigint: true }).catch(() => undefined);
  if (!st?.isFile() || st.size !== BigInt(desc.size)) return false;
  const id = identity(st, desc.digest);
  if (intact.get(file) === id) return true;
  const key = `${file} ${id}`;
  let p = hashing.get(key);
  if (!p) {
    p = hashFile(file, desc).finally(() => hashing.delete(key));
    hashing.set(key, p);
  }
  signal?.throwIfAborted();
  const ok = await p;
  if (ok) remember(file, id);
  return ok;
}

async function hashFile(file: string, desc: Descriptor): Promise<boolean> {
  try {
    const { fh, size } = await openRegular(file, desc.digest);
    if (size !== desc.size) {
      await fh.close();
      return false;
    }
    const hasher = newHasher(algorithmOf(desc.digest));
    let n = 0;
    for await (const chunk of createReadStream('', { fd: fh, highWaterMark: 1 << 20 })) {
      hasher.update(chunk as Buffer);
      n += (chunk as Buffer).length;
      if (n > desc.size) return false;
    }
    return n === desc.size && hasher.digest() === desc.digest;
  } catch (err) {
    // Unreadable (EIO, vanished, not a regular file): as good as absent, so it is rewritten.
    if (err instanceof BkError || (err as NodeJS.ErrnoException).code) return false;
    throw err;
  }
}

/** Drops the first `left` bytes of a stream. */
class SkipPrefix extends Transform {
  constructor(private left: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.left >= chunk.length) {
      this.left -= chunk.length;
      cb();
      return;
    }
    const out = this.left ? chunk.subarray(this.left) : chunk;
    this.left = 0;
    cb(null, out);
  }
}

/**
 * Streams a blob file from `offset`, verifying the whole file against `desc`
 * (the skipped prefix is read and hashed too). A size that differs fails at
 * once; wrong bytes fail the stream with DATA_LOSS before its end.
 */
export async function readVerified(file: string, desc: Descriptor, where: string, offset = 0, signal?: AbortSignal): Promise<Readable> {
  const { fh, size } = await openRegular(file, `blob ${desc.digest} in ${where}`);
  if (size !== desc.size || offset > size || offset < 0) {
    await fh.close();
    if (size !== desc.size) {
      forgetIntact(file);
      throw dataLoss(`blob ${desc.digest} in ${where} has ${size} bytes, its descriptor says ${desc.size}`, { reason: 'size-mismatch' });
    }
    throw invalidArgument(`offset ${offset} is outside blob ${desc.digest} of ${size} bytes`);
  }
  const raw = createReadStream('', { fd: fh, highWaterMark: 1 << 20, signal });
  const checked = verified(raw, desc);
  // Whoever reads this stream sees its errors; until then one must not
  // crash the process (it is kept in `errored` for the reader).
  checked.on('error', () => forgetIntact(file));
  if (offset === 0) return checked;
  const skip = new SkipPrefix(offset);
  checked.once('error', (err) => skip.destroy(err));
  skip.once('close', () => {
    if (!checked.destroyed) checked.destroy();
  });
  skip.on('error', () => undefined);
  return checked.pipe(skip);
}
