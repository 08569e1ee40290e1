// What the client takes from a daemon is checked like any other input: the
// daemon may be another version, broken, or not ours at all. A malformed
// answer is INTERNAL (the daemon's fault, not the caller's INVALID_ARGUMENT),
// and blob chunks must add up to the blob that was asked for.
import { BkError, dataLoss } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { newHasher, parseDigest, type Hasher } from '../oci/digest.js';
import type { WireBlobChunk } from '../api/proto.js';

/** Runs `decode` on a daemon's answer; whatever it throws becomes INTERNAL "the daemon's … is malformed". */
export function fromDaemon<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new BkError('INTERNAL', `the daemon's ${what} is malformed: ${(err as Error).message}`, { cause: err, reason: 'malformed-response' });
  }
}

/**
 * FetchBlob's chunks, checked as they arrive: each names the blob asked for
 * and starts where the previous one ended, never past a known size; at the
 * end the size is whole and, read from offset 0, the bytes hash to the
 * digest. DATA_LOSS otherwise. (The daemon checks the digest too; this
 * holds whatever answers.)
 */
export class FetchedChunks {
  private pos: number;
  private readonly hasher?: Hasher;

  constructor(
    private readonly digest: string,
    offset: number,
    private readonly size?: number,
  ) {
    this.pos = offset;
    if (offset === 0) this.hasher = newHasher(parseDigest(digest).algorithm);
  }

  /** The chunk's bytes, once they follow on from what came before. */
  take(c: WireBlobChunk): Buffer {
    const data = c.data ?? Buffer.alloc(0);
    if (c.digest !== this.digest) throw this.lie(`a chunk of ${JSON.stringify(String(c.digest).slice(0, 80))}`);
    if (Number(c.offset) !== this.pos) throw this.lie(`a chunk at offset ${c.offset} where ${this.pos} was next`);
    this.pos += data.length;
    if (this.size !== undefined && this.pos > this.size) throw this.lie(`more than its ${this.size} bytes`);
    this.hasher?.update(data);
    return data;
  }

  /** After the last chunk: the blob is whole, and from offset 0 its digest matches. */
  end(): void {
    if (this.size !== undefined && this.pos !== this.size) throw this.lie(`${this.pos} bytes of its ${this.size}`);
    const got = this.hasher?.digest();
    if (got !== undefined && got !== this.digest) throw this.lie(`bytes whose digest is ${got}`);
  }

  private lie(what: string): BkError {
    return dataLoss(`the daemon sent ${what} for blob ${this.digest}`, { reason: 'bad-chunk' });
  }
}

/**
 * The size a fetchBlob request states, when it names a full descriptor. As
 * the daemon reads the request (requested() in server/handlers.ts), one with
 * neither a size nor a media type is only a digest.
 */
export function statedSize(blob: string | Descriptor): number | undefined {
  return typeof blob === 'string' || !(blob.size > 0 || blob.mediaType) ? undefined : blob.size;
}
