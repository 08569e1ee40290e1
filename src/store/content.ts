// Small stream helpers shared by every backend: bounded reads and
// digest verification while bytes flow, so nothing is buffered whole.
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { BkError, dataLoss, resourceExhausted } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { algorithmOf, newHasher, type Hasher } from '../oci/digest.js';
import type { Fetcher } from './types.js';

/** BuildKit refuses configs and manifests over 1 MiB on import. */
export const BUILDKIT_IMPORT_LIMIT = 1 << 20;
/** Our own ceiling for configs and manifests we read. */
export const MAX_METADATA_BYTES = 16 << 20;

const ignore = () => {};

/**
 * Makes a stream's 'error' event safe to emit before anyone consumes it.
 * A stream that fails while nobody listens (a blob that turns out corrupt
 * while the caller is still checking the target) would otherwise crash the
 * process with "Unhandled 'error' event". The error is not lost: the stream
 * keeps it (`stream.errored`), and every consumer we use (`for await`,
 * pipeline()) reads it from there when it starts.
 */
export function holdErrors<T extends NodeJS.EventEmitter>(stream: T): T {
  // Once per stream: a stream passed through several helpers would otherwise
  // gather one listener per helper, and a deep chain trips Node's
  // MaxListeners warning, which the CLI would print to the user.
  if (!stream.listeners('error').includes(ignore)) stream.on('error', ignore);
  return stream;
}

/**
 * Destroys a stream we give up on. An HTTP body destroyed before its end
 * emits an abort error; with nobody left listening that would crash the
 * process, so the error is held (holdErrors()).
 */
export function discard(stream: NodeJS.EventEmitter & { destroy(): unknown }): void {
  holdErrors(stream).destroy();
}

/**
 * `source` piped into `into` with pipeline(): an error on either side
 * destroys both, a source that already failed fails `into` at once, and
 * `into` may be handed out unconsumed (its errors are held, holdErrors()).
 */
export function pipeInto<T extends Transform>(source: Readable, into: T): T {
  holdErrors(into);
  pipeline(source, into, ignore);
  return into;
}

/**
 * A pass-through that hashes and counts, and fails the stream on a size or
 * digest mismatch (DATA_LOSS) before the last byte is acknowledged. Its
 * errors are held from the start (holdErrors()).
 */
export class VerifyStream extends Transform {
  private readonly hasher: Hasher;
  private seen = 0;

  /** @param from where the bytes come from, for messages ("registry:host/repo"). */
  constructor(
    private readonly desc: Descriptor,
    private readonly offset = 0,
    private readonly from?: string,
  ) {
    super();
    holdErrors(this);
    // With an offset we cannot hash the skipped prefix, so only size is checked.
    this.hasher = newHasher(algorithmOf(desc.digest));
    this.seen = offset;
  }

  private get what(): string {
    return `content of ${this.desc.digest}${this.from ? ` from ${this.from}` : ''}`;
  }

  /** True when this stream already checks exactly what verified(…, desc, offset) would. */
  verifies(desc: Descriptor, offset = 0): boolean {
    return desc.digest === this.desc.digest && desc.size === this.desc.size && offset === this.offset;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.desc.size) {
      cb(dataLoss(`${this.what} is larger than its descriptor's size ${this.desc.size}`, { reason: 'size-mismatch' }));
      return;
    }
    if (this.offset === 0) this.hasher.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.desc.size) {
      cb(dataLoss(`${this.what} has ${this.seen} bytes, descriptor says ${this.desc.size}`, { reason: 'size-mismatch' }));
      return;
    }
    if (this.offset === 0) {
      const got = this.hasher.digest();
      if (got !== this.desc.digest) {
        cb(dataLoss(`digest mismatch: expected ${this.desc.digest}${this.from ? ` from ${this.from}` : ''}, got ${got}`, { reason: 'digest-mismatch' }));
        return;
      }
    }
    cb();
  }
}

/**
 * Pipes `source` through a VerifyStream (pipeInto(): errors either way, held
 * until consumed). A source that is already such a stream for the same
 * descriptor and offset (a registry fetch verifies its own reads) is
 * returned as it is, so no byte is hashed twice. `from` names the source in
 * DATA_LOSS messages.
 */
export function verified(source: Readable, desc: Descriptor, offset = 0, from?: string): Readable {
  if (source instanceof VerifyStream && source.verifies(desc, offset)) return source;
  return pipeInto(source, new VerifyStream(desc, offset, from));
}

/**
 * Reads a whole stream, failing once it passes `limit` bytes, or (with
 * `deadlineMs`) once reading it takes longer than that: DEADLINE_EXCEEDED,
 * so a body trickled a byte at a time cannot hold the reader for hours.
 */
export async function readAll(stream: Readable | AsyncIterable<Uint8Array>, limit: number, what = 'content', deadlineMs?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  const timer =
    deadlineMs !== undefined && stream instanceof Readable
      ? setTimeout(() => stream.destroy(new BkError('DEADLINE_EXCEEDED', `${what} was not read within ${deadlineMs} ms`, { reason: 'too-slow' })), deadlineMs)
      : undefined;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      n += b.length;
      if (n > limit) {
        if (stream instanceof Readable) discard(stream);
        throw resourceExhausted(`${what} is larger than the ${limit}-byte limit`, { reason: 'too-large' });
      }
      chunks.push(b);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks, n);
}

/** Fetches small content (configs, manifests) whole, verified against its descriptor. */
export async function fetchBytes(store: Fetcher, desc: Descriptor, limit = MAX_METADATA_BYTES, signal?: AbortSignal): Promise<Buffer> {
  if (desc.size > limit) {
    throw resourceExhausted(`${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit`, { reason: 'too-large' });
  }
  const stream = await store.fetch(desc, { signal });
  return readAll(verified(stream, desc), limit, desc.digest);
}

export function toReadable(content: Readable | Uint8Array): Readable {
  return content instanceof Uint8Array ? Readable.from([Buffer.from(content)]) : content;
}
