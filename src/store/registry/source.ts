// Upload content that may have to be read more than once, and the streaming
// pieces uploads are built from. A broken upload that the registry cannot
// resume has to start over from byte 0, which only works when the content
// can be opened again: bytes and factories can, a plain Readable cannot.
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { BkError, dataLoss } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { algorithmOf, newHasher, type Hasher } from '../../oci/digest.js';
import { discard, holdErrors, pipeInto } from '../content.js';

/** Content for a push: bytes, a one-shot stream, or a function that opens a fresh stream. */
export type BlobSource = Readable | Uint8Array | (() => Readable | Promise<Readable>);

export class Source {
  private opened = 0;
  constructor(private readonly src: BlobSource) {}

  /** Whether another open() will give the content from byte 0. */
  canReopen(): boolean {
    return typeof this.src === 'function' || this.src instanceof Uint8Array || this.opened === 0;
  }

  async open(): Promise<Readable> {
    if (!this.canReopen()) throw new BkError('INTERNAL', 'content stream was already consumed', { reason: 'not-restartable' });
    this.opened++;
    if (typeof this.src === 'function') return this.src();
    if (this.src instanceof Uint8Array) return Readable.from([Buffer.from(this.src.buffer, this.src.byteOffset, this.src.byteLength)], { objectMode: false });
    return this.src;
  }
}

/**
 * The bookkeeping of a held-back verified upload, without the stream: each
 * chunk is counted and hashed and the one before it handed back; the last is
 * only released once size and digest check out. Throws DATA_LOSS otherwise.
 */
class Holdback {
  private readonly hasher: Hasher;
  private held: Buffer | null = null;
  private seen = 0;

  /** `hasher`: one that already hashed what came before these bytes (a resumed upload); `desc.size` counts these bytes only. */
  constructor(
    private readonly desc: Descriptor,
    private readonly onBytes?: (seen: number) => void,
    hasher?: Hasher,
  ) {
    this.hasher = hasher ?? newHasher(algorithmOf(desc.digest));
  }

  /** Takes a chunk in; returns the one to pass on now (the previous), if any. */
  take(chunk: Buffer | Uint8Array): Buffer | null {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    this.seen += b.length;
    this.onBytes?.(this.seen);
    if (this.seen > this.desc.size) throw dataLoss(`content of ${this.desc.digest} is larger than its descriptor's size ${this.desc.size}`, { reason: 'size-mismatch' });
    this.hasher.update(b);
    const prev = this.held;
    this.held = b;
    return prev;
  }

  /** At the end of the content: the held chunk, once everything checks out. */
  end(): Buffer | null {
    if (this.seen !== this.desc.size) throw dataLoss(`content of ${this.desc.digest} has ${this.seen} bytes, descriptor says ${this.desc.size}`, { reason: 'size-mismatch' });
    const got = this.hasher.digest();
    if (got !== this.desc.digest) throw dataLoss(`digest mismatch: expected ${this.desc.digest}, got ${got}`, { reason: 'digest-mismatch' });
    return this.held;
  }
}

/**
 * `source`'s bytes on their way to a registry, hashed and counted, with the
 * last chunk held back until the end is verified: on a digest or size
 * mismatch the registry never receives a complete body, so it cannot commit
 * it. Read straight off `source` ('data' events, the source paused while the
 * reader is full) rather than piped through a Transform: one stream hop less
 * per chunk, for every upload body the store and the gateway send. Its errors
 * are held from the start (holdErrors()): the request that reads it may not
 * have begun when the content turns out wrong. Like an unpipe, an end on our
 * side (an error, a reader that gave up) stops reading `source` and leaves it
 * paused, not destroyed: an HTTP request body whose owner still has to answer.
 * `hasher`: one that already hashed what came before these bytes (a resumed
 * upload); `onBytes`: the count so far, as each chunk is taken.
 */
export function holdbackVerified(source: Readable, desc: Descriptor, opts: { hasher?: Hasher; onBytes?: (seen: number) => void } = {}): Readable {
  const hold = new Holdback(desc, opts.onBytes, opts.hasher);
  const out = holdErrors(
    new Readable({
      read: () => void source.resume(),
      destroy: (err, cb) => {
        detach();
        cb(err);
      },
    }),
  );
  const fail = (err: unknown) => out.destroy(err as Error);
  const onData = (chunk: Buffer) => {
    let next: Buffer | null;
    try {
      next = hold.take(chunk);
    } catch (err) {
      return fail(err);
    }
    if (next && !out.push(next)) source.pause();
  };
  const onEnd = () => {
    detach();
    try {
      const last = hold.end();
      if (last) out.push(last);
      out.push(null);
    } catch (err) {
      fail(err);
    }
  };
  // A source that closes without its end (a client gone mid-body) must not leave the reader waiting.
  const onClose = () => fail(source.errored ?? new BkError('CANCELLED', `content of ${desc.digest}: its source closed before the end`));
  const detach = () => {
    source.off('data', onData).off('end', onEnd).off('error', fail).off('close', onClose);
    source.pause();
  };
  if (source.destroyed) {
    onClose();
    return out;
  }
  source.on('data', onData).once('end', onEnd).once('error', fail).once('close', onClose);
  // Nothing flows until the reader asks (read() resumes the source).
  source.pause();
  return out;
}

/** Reads a stream in exact-size pieces (for chunked uploads). */
export class ExactReader {
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | null = null;
  private done = false;

  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Up to n bytes; fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      let b = this.rest;
      this.rest = null;
      if (!b) {
        if (this.done) break;
        const r = await this.it.next();
        if (r.done) {
          this.done = true;
          break;
        }
        b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      }
      const take = Math.min(n - have, b.length);
      parts.push(b.subarray(0, take));
      have += take;
      if (take < b.length) this.rest = b.subarray(take);
    }
    return Buffer.concat(parts, have);
  }

  close(): void {
    if (!this.stream.destroyed) discard(this.stream);
  }
}

/** Drops the first `n` bytes (a server that ignored our Range header). */
export function skipBytes(stream: Readable, n: number): Readable {
  let left = n;
  const skip = new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return cb();
      }
      const out = chunk.subarray(left);
      left = 0;
      cb(null, out);
    },
  });
  return pipeInto(stream, skip);
}
