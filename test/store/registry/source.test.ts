// holdbackVerified(): the upload body a relay hands on (the gateway's PUT to
// its upstream). What matters is what the reader can have received when the
// content turns out wrong: never all of it.
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { holdbackVerified } from '../../../src/store/registry/source.js';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const desc = (b: Buffer, size = b.length) => ({ mediaType: 'application/octet-stream', digest: sha(b), size });

/** Reads everything it can; returns the bytes read and the error the stream ended with. */
async function drain(r: Readable): Promise<{ got: Buffer; err?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of r) parts.push(c as Buffer);
    return { got: Buffer.concat(parts) };
  } catch (err) {
    return { got: Buffer.concat(parts), err };
  }
}

function chunks(data: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += n) out.push(data.subarray(i, i + n));
  return out;
}

describe('holdbackVerified', () => {
  const data = Buffer.from('0123456789'.repeat(1000));

  it('passes the content on unchanged when it matches', async () => {
    const { got, err } = await drain(holdbackVerified(Readable.from(chunks(data, 777)), desc(data)));
    expect(err).toBeUndefined();
    expect(got.equals(data)).toBe(true);
  });

  it('holds the last chunk back until the end is verified', async () => {
    const src = new PassThrough();
    const out = holdbackVerified(src, desc(data));
    const seen: Buffer[] = [];
    out.on('data', (c: Buffer) => seen.push(c));
    for (const c of chunks(data, 1000)) src.write(c);
    await new Promise((r) => setImmediate(r));
    // Every chunk but the last has gone on; the last waits for the end.
    expect(Buffer.concat(seen).length).toBe(data.length - 1000);
    src.end();
    await new Promise((r) => out.once('end', r));
    expect(Buffer.concat(seen).equals(data)).toBe(true);
  });

  it('a digest mismatch fails with DATA_LOSS before the reader has the whole body', async () => {
    const wrong = Buffer.from(data);
    wrong[wrong.length - 1] ^= 1;
    const { got, err } = await drain(holdbackVerified(Readable.from(chunks(wrong, 1000)), desc(data)));
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('DATA_LOSS');
    expect((err as BkError).reason).toBe('digest-mismatch');
    expect(got.length).toBeLessThan(data.length);
  });

  it('too many or too few bytes fail with DATA_LOSS, the reader never having them all', async () => {
    const long = await drain(holdbackVerified(Readable.from(chunks(Buffer.concat([data, Buffer.from('x')]), 1000)), desc(data)));
    expect((long.err as BkError).reason).toBe('size-mismatch');
    expect(long.got.length).toBeLessThan(data.length);
    const short = await drain(holdbackVerified(Readable.from(chunks(data.subarray(1), 1000)), desc(data)));
    expect((short.err as BkError).reason).toBe('size-mismatch');
    expect(short.got.length).toBeLessThan(data.length - 1);
  });

  it('reads the source only as fast as the reader takes it', async () => {
    const src = new PassThrough({ highWaterMark: 1024 });
    const out = holdbackVerified(src, desc(data));
    let written = 0;
    for (const c of chunks(data, 1000)) {
      if (!src.write(c)) break;
      written += c.length;
    }
    await new Promise((r) => setImmediate(r));
    // Nobody reads `out`: the source is paused with its buffer full, not drained into ours.
    expect(src.isPaused()).toBe(true);
    expect(out.readableLength).toBeLessThanOrEqual(out.readableHighWaterMark + 1000);
    expect(written).toBeLessThan(data.length);
  });

  it('a source error is the reader error', async () => {
    const src = new PassThrough();
    const out = holdbackVerified(src, desc(data));
    src.write(data.subarray(0, 100));
    src.destroy(new BkError('UNAVAILABLE', 'client went away'));
    const { err } = await drain(out);
    expect((err as BkError).message).toMatch(/client went away/);
  });

  it('a source that closes before its end fails the reader instead of leaving it waiting', async () => {
    const src = new PassThrough();
    const out = holdbackVerified(src, desc(data));
    src.write(data.subarray(0, 100));
    src.destroy();
    const { err } = await drain(out);
    expect((err as BkError).code).toBe('CANCELLED');
  });

  it('a reader that gives up leaves the source paused and whole, for its owner to answer and drain', async () => {
    const src = new PassThrough();
    const out = holdbackVerified(src, desc(data));
    src.write(data.subarray(0, 100));
    out.destroy();
    await new Promise((r) => setImmediate(r));
    expect(src.destroyed).toBe(false);
    expect(src.listenerCount('data')).toBe(0);
    src.end(data.subarray(100));
    const rest = await drain(src);
    expect(rest.got.length).toBe(data.length);
  });
});
