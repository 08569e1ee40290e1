// The resumable upload hash: a state saved after any byte and loaded by
// another hasher (another daemon) finishes with the digest node's crypto (or
// @noble/hashes for BLAKE3) computes over the whole; what cannot be resumed
// is refused with a typed error.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { HashingPass, RESUMABLE_ALGORITHMS, resumeHash } from '../../src/gateway/upload-hash.js';
import { digestBytes } from '../../src/oci/digest.js';

describe('resumeHash', () => {
  const data = randomBytes(3 * 65536 + 17);

  it('continues a saved state, split anywhere, for every algorithm the gateway verifies', async () => {
    expect([...RESUMABLE_ALGORITHMS].sort()).toEqual(['blake3', 'sha256', 'sha512']);
    for (const alg of RESUMABLE_ALGORITHMS) {
      for (const cut of [0, 1, 63, 64, 65, 65536, data.length]) {
        const a = await resumeHash({ alg });
        a.update(data.subarray(0, cut));
        const saved = JSON.parse(JSON.stringify(a.save()));
        const b = await resumeHash(saved);
        b.update(data.subarray(cut));
        expect(b.digest(), `${alg} cut at ${cut}`).toBe(digestBytes(data, alg));
      }
      expect((await resumeHash({ alg })).digest()).toBe(digestBytes(Buffer.alloc(0), alg));
    }
  });

  it('keeps the sealed state small: a few hundred bytes for SHA-2, about 2.5 KiB for BLAKE3', async () => {
    for (const [alg, max] of [['sha256', 200], ['sha512', 320], ['blake3', 2600]] as const) {
      const h = await resumeHash({ alg });
      h.update(data);
      expect(h.save().s!.length, alg).toBeLessThanOrEqual(max);
    }
  });

  it('refuses an unknown algorithm or a state that does not load, typed', async () => {
    for (const st of [{ alg: 'md5' }, { alg: 'sha256', s: Buffer.from('garbage').toString('base64') }, { alg: 'sha512', s: (await resumeHash({ alg: 'sha256' })).save().s }]) {
      const err = await resumeHash(st).catch((e: unknown) => e);
      expect(err, JSON.stringify(st)).toBeInstanceOf(BkError);
      expect((err as BkError).reason).toBe('upload-unverifiable');
    }
  });
});

describe('HashingPass', () => {
  it('passes the bytes on unchanged, counting and hashing them', async () => {
    const data = randomBytes(200_000);
    const pass = new HashingPass(await resumeHash({ alg: 'sha256' }));
    const out: Buffer[] = [];
    await pipeline(Readable.from([data.subarray(0, 5), data.subarray(5)]), pass, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(pass.seen).toBe(data.length);
    expect(pass.hasher.digest()).toBe(digestBytes(data));
  });
});
