// Small stream helpers shared by every backend: bounded reads and
// digest verification while bytes flow, so nothing is buffered whole.
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { dataLoss, resourceExhausted } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { algorithmOf, newHasher, type Hasher } from '../oci/digest.js';
import type { Fetcher } from './types.js';

/** BuildKit refuses configs and manifests over 1 MiB on import. */
export const BUILDKIT_IMPORT_LIMIT = 1 << 20;
/** Our own ceiling for configs and manifests we read. */
export const MAX_METADATA_BYTES = 16 << 20;

/**
 * A pass-through that hashes and counts, and fails the stream on a size or
 * digest mismatch (DATA_LOSS) before the last byte is acknowledged.
 */
export class VerifyStream extends Transform {
  private readonly hasher: Hasher;
  private seen = 0;

  constructor(
    private readonly desc: Descriptor,
    private readonly offset = 0,
  ) {
    super();
    // With an offset we cannot hash the skipped prefix, so only size is checked.
    this.hasher = newHasher(algorithmOf(desc.digest));
    this.seen = offset;
  }

  /** True when this stream already checks exactly what verified(…, desc, offset) would. */
  verifies(desc: Descriptor, offset = 0): boolean {
    return desc.digest === this.desc.digest && desc.size === this.desc.size && offset === this.offset;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.desc.size) {
      cb(dataLoss(`content of ${this.desc.digest} is larger than its descriptor's size ${this.desc.size}`));
      return;
    }
    if (this.offset === 0) this.hasher.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.desc.size) {
      cb(dataLoss(`content of ${this.desc.digest} has ${this.seen} bytes, descriptor says ${this.desc.size}`));
      return;
    }
    if (this.offset === 0) {
      const got = this.hasher.digest();
      if (got !== this.desc.digest) {
        cb(dataLoss(`digest mismatch: expected ${this.desc.digest}, got ${got}`, { reason: 'digest-mismatch' }));
        return;
      }
    }
    cb();
  }
}

/**
 * Pipes `source` through a VerifyStream, carrying the source's errors along.
 * A source that is already such a stream for the same descriptor and offset
 * (a registry fetch verifies its own reads) is returned as it is, so no
 * byte is hashed twice.
 */
export function verified(source: Readable, desc: Descriptor, offset = 0): Readable {
  if (source instanceof VerifyStream && source.verifies(desc, offset)) return source;
  const v = new VerifyStream(desc, offset);
  source.once('error', (err) => v.destroy(err));
  v.once('close', () => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
  });
  return source.pipe(v);
}

/** Reads a whole stream, failing once it passes `limit` bytes. */
export async function readAll(stream: Readable | AsyncIterable<Uint8Array>, limit: number, what = 'content'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    n += b.length;
    if (n > limit) {
      if (stream instanceof Readable) stream.destroy();
      throw resourceExhausted(`${what} is larger than the ${limit}-byte limit`, { reason: 'too-large' });
    }
    chunks.push(b);
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
