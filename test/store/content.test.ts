// verified(): the digest and size check every read path shares.
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readAll, verified, VerifyStream } from '../../src/store/content.js';

const bytes = Buffer.from('verified content');
const desc = { mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
const read = async (r: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('verified', () => {
  it('passes matching content and fails a mismatch with DATA_LOSS', async () => {
    expect((await read(verified(Readable.from([bytes]), desc))).equals(bytes)).toBe(true);
    await expect(read(verified(Readable.from([Buffer.from('verified CONTENT')]), desc))).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });

  it('does not verify twice what a stream already verifies, and still wraps anything else', () => {
    const once = verified(Readable.from([bytes]), desc);
    expect(once).toBeInstanceOf(VerifyStream);
    expect(verified(once, desc)).toBe(once);
    // Another descriptor or offset is a different check: wrapped again.
    // (Each on its own stream: pipeline() puts several listeners on a source, and one
    // source piped into two streams would trip Node's MaxListeners warning.)
    const twice = verified(Readable.from([bytes]), desc);
    const other = verified(once, { ...desc, size: desc.size + 1 });
    const offset = verified(twice, desc, 3);
    expect(other).not.toBe(once);
    expect(offset).not.toBe(twice);
    for (const s of [once, twice, other, offset]) s.destroy();
  });
});

describe('errors before anyone reads', () => {
  const tick = () => new Promise((r) => setTimeout(r, 20));

  it('a verified stream that fails while unread keeps its error for the reader (no unhandled error event)', async () => {
    const v = verified(Readable.from([Buffer.from('verified CONTENT')]), desc, 0, 'registry:h/r');
    await tick(); // the whole (wrong) content has flowed in and failed the digest by now
    expect(v.errored).toBeTruthy();
    const err = await read(v).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DATA_LOSS', reason: 'digest-mismatch' });
    expect((err as Error).message).toContain(desc.digest);
    expect((err as Error).message).toContain('registry:h/r');
  });

  it('a source that already failed fails the verified stream at once instead of leaving it hanging', async () => {
    const src = new PassThrough();
    src.on('error', () => {});
    src.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' }));
    await tick();
    await expect(read(verified(src, desc))).rejects.toThrow('connection reset');
  });

  it('readAll with a deadline fails a trickle with DEADLINE_EXCEEDED', async () => {
    const slow = new Readable({
      read() {
        setTimeout(() => this.push(Buffer.from('x')), 10);
      },
    });
    await expect(readAll(slow, 1 << 20, 'a manifest', 50)).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });
});
