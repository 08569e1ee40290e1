// resumingBody(): every way a download can drag on ends, with a typed error.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { resumingBody, type ResumeOptions } from '../../../src/store/registry/resume.js';
import { readStream } from '../conformance.js';

const RETRY = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 10_000 };
const opts = (o: Partial<ResumeOptions> = {}): ResumeOptions => ({
  retry: RETRY,
  maxResumes: 4,
  minBytesPerSecond: 0,
  windowMs: 60_000,
  budgetMs: 60_000,
  what: 'GET blob test',
  ...o,
});
const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** A body that sends `bytes` then fails with `err` (or ends, without one). */
function body(bytes: Buffer, err?: Error): Readable {
  return new Readable({
    read() {
      if (bytes.length) {
        this.push(bytes);
        bytes = Buffer.alloc(0);
      } else if (err) this.destroy(err);
      else this.push(null);
    },
  });
}

const read = readStream;

describe('resumingBody', () => {
  it('caps resumes in all, even when every attempt makes progress', async () => {
    let opens = 0;
    const reopen = async () => (opens++, body(Buffer.from('x'), reset()));
    const err = await read(resumingBody(body(Buffer.from('x'), reset()), 0, 1000, reopen, opts())).catch((e) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', reason: 'too-many-resumes' });
    expect(opens).toBe(4);
  });

  it('gives up after maxAttempts failures in a row without progress', async () => {
    let opens = 0;
    const reopen = async () => (opens++, body(Buffer.alloc(0), reset()));
    const err = await read(resumingBody(body(Buffer.alloc(0), reset()), 0, 10, reopen, opts())).catch((e) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', reason: 'network' });
    expect(opens).toBe(RETRY.maxAttempts - 1);
  });

  it('ends normally when every byte arrived before the connection failed: the verifier judges the content', async () => {
    const got = await read(resumingBody(body(Buffer.from('abc'), reset()), 0, 3, async () => body(Buffer.alloc(0)), opts()));
    expect(got.toString()).toBe('abc');
  });

  it('turns a transport error it cannot resume into UNAVAILABLE, never a raw error', async () => {
    const err = await read(resumingBody(body(Buffer.from('a'), new Error('weird')), 0, 10, async () => body(Buffer.alloc(0)), opts())).catch((e) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    expect(String(err.message)).toContain('GET blob test');
  });

  it('fails a download whose waiting time passes its budget with DEADLINE_EXCEEDED', async () => {
    // One byte every 5 ms, with a budget of 30 ms for 1000 bytes.
    const slow = new Readable({
      read() {
        setTimeout(() => this.push(Buffer.from('y')), 5);
      },
    });
    const err = await read(resumingBody(slow, 0, 1000, async () => body(Buffer.alloc(0)), opts({ budgetMs: 30 }))).catch((e) => e);
    expect(err).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });

  it('drops a body below the minimum throughput and resumes it', async () => {
    let opens = 0;
    const trickle = () =>
      new Readable({
        read() {
          setTimeout(() => this.push(Buffer.from('z')), 5);
        },
      });
    const err = await read(
      resumingBody(trickle(), 0, 10_000, async () => (opens++, trickle()), opts({ minBytesPerSecond: 100_000, windowMs: 20, maxResumes: 2 })),
    ).catch((e) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', reason: 'too-many-resumes' });
    expect(err.message).toMatch(/below the 100000 bytes\/s minimum/);
    expect(opens).toBe(2);
  });

  it('lets the connection go when the reader stops early', async () => {
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(1024));
      },
    });
    const out = resumingBody(endless, 0, 1 << 30, async () => body(Buffer.alloc(0)), opts());
    for await (const _ of out) break;
    await new Promise((r) => setTimeout(r, 10));
    expect(endless.destroyed).toBe(true);
  });
});
