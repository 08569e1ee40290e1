// The BlobSource an export hands to pushCache: layer blobs streamed by the
// client over the Export call (demultiplexed by digest), or read from a
// content store directory the client named. Nothing is buffered whole: each
// blob is a PassThrough with a bounded (4 MiB) high-water mark, and the caller pauses
// the gRPC call while a blob's buffer is full, so HTTP/2 flow control pushes
// back on the client.
import { createReadStream, promises as fs } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import type { BlobSource } from '../cache/transfer.js';
import { drained } from '../drain.js';
import { asBkError, BkError, dataLoss, invalidArgument, notFound } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { contentStorePath } from '../store/local/layout.js';
import type { WireBlobChunk } from '../api/proto.js';


/** True when `dir` holds the blob with the descriptor's size. */
export async function inContentStore(dir: string, d: Descriptor): Promise<boolean> {
  const st = await fs.stat(contentStorePath(dir, d.digest)).catch(() => undefined);
  return st?.isFile() === true && st.size === d.size;
}

interface Incoming {
  desc: Descriptor;
  pass: PassThrough;
  received: number;
  /** fetch() was called: someone reads `pass`. */
  consumed: boolean;
  done: boolean;
}

export class ClientBlobs implements BlobSource {
  /** Blob bytes received from the client so far. */
  receivedBytes = 0;
  private readonly incoming = new Map<string, Incoming>();
  private cursor = 0;
  private failed?: BkError;

  /**
   * @param order digests the client must send, in order (NeedBlobs)
   * @param fromDir blobs read from `dir` instead of the client
   * @param onError called once when a streamed blob fails, so the export can stop at once
   */
  constructor(
    private readonly order: Descriptor[],
    private readonly fromDir: Map<string, Descriptor>,
    private readonly dir: string | undefined,
    private readonly onError: (err: BkError) => void,
  ) {
    for (const d of order) {
      // 4 MiB: a few chunks of the recommended 1 MiB wait here while the store
      // hashes and writes, so the call keeps flowing (integration/bench/grpc.ts).
      const pass = new PassThrough({ highWaterMark: 4 << 20 });
      // abort() destroys blobs nobody reads yet; their error is reported through onError, not here.
      pass.on('error', () => undefined);
      this.incoming.set(d.digest, { desc: d, pass, received: 0, consumed: false, done: false });
    }
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    if (this.failed) throw this.failed;
    const inc = this.incoming.get(desc.digest);
    if (inc) {
      if (inc.consumed) throw new BkError('INTERNAL', `blob ${desc.digest} was requested twice`);
      inc.consumed = true;
      // Not wrapped in verified(): every ContentStore.push verifies digest and
      // size while it streams (see ContentStore.push), and fetch() only feeds
      // pushCache, so a second sha256 here cost ~0.7-1 s of daemon CPU per
      // GiB, on the thread that also reads the call. Sizes are still checked
      // as chunks come (chunk(), blobDone()). A mismatch fails the push,
      // which destroys this stream with the DATA_LOSS error: fail at once on it.
      inc.pass.once('error', (err) => this.fail(asBkError(err)));
      return inc.pass;
    }
    if (this.dir && this.fromDir.has(desc.digest)) {
      // Verified by the push as above; inContentStore() checked the size.
      return createReadStream(contentStorePath(this.dir, desc.digest), { highWaterMark: 1 << 20 });
    }
    throw notFound(`blob ${desc.digest} was neither sent by the client nor found in the content store`);
  }

  /**
   * Takes one chunk. Resolves once the blob's buffer has room again, so the
   * caller (which pauses the call meanwhile) reads no further ahead.
   */
  async chunk(c: WireBlobChunk): Promise<void> {
    if (this.failed) throw this.failed;
    const inc = this.incoming.get(c.digest);
    if (!inc) throw invalidArgument(`blob_chunk for ${JSON.stringify(c.digest)}, which was not asked for`, { reason: 'unknown-blob' });
    this.checkTurn(c.digest, 'blob_chunk');
    const data = c.data ?? Buffer.alloc(0);
    if (Number(c.offset) !== inc.received) {
      throw invalidArgument(`blob_chunk for ${c.digest} at offset ${c.offset}, expected ${inc.received}`, { reason: 'bad-offset' });
    }
    inc.received += data.length;
    this.receivedBytes += data.length;
    if (inc.received > inc.desc.size) {
      throw dataLoss(`client sent more than ${inc.desc.size} bytes for ${c.digest}`, { reason: 'size-mismatch' });
    }
    // A consumer that gave up without error (the target got the blob meanwhile) leaves chunks to drop.
    if (inc.pass.destroyed || data.length === 0) return;
    if (!inc.pass.write(data)) await drained(inc.pass);
  }

  /** Ends one blob; the verifying stream then checks its size and digest. */
  blobDone(digest: string): void {
    if (this.failed) throw this.failed;
    const inc = this.incoming.get(digest);
    if (!inc) throw invalidArgument(`blob_done for ${JSON.stringify(digest)}, which was not asked for`, { reason: 'unknown-blob' });
    this.checkTurn(digest, 'blob_done');
    if (inc.received !== inc.desc.size) {
      throw dataLoss(`content of ${digest} has ${inc.received} bytes, descriptor says ${inc.desc.size}`, { reason: 'size-mismatch' });
    }
    inc.done = true;
    this.cursor++;
    if (!inc.pass.destroyed) inc.pass.end();
  }

  /** The client half-closed: any blob it has not finished never will be. */
  clientEnded(): void {
    for (const inc of this.incoming.values()) {
      if (!inc.done) {
        this.fail(invalidArgument(`the client ended the stream before sending blob ${inc.desc.digest}`, { reason: 'missing-blob' }));
        return;
      }
    }
  }

  /** Stops every blob stream (export failed or was cancelled). */
  abort(err: BkError): void {
    this.failed ??= err;
    for (const inc of this.incoming.values()) if (!inc.pass.destroyed) inc.pass.destroy(err);
  }

  get allReceived(): boolean {
    return this.cursor >= this.order.length;
  }

  private fail(err: BkError): void {
    if (this.failed) return;
    this.abort(err);
    this.onError(err);
  }

  private checkTurn(digest: string, what: string): void {
    const expected = this.order[this.cursor]?.digest;
    if (digest !== expected) {
      throw invalidArgument(`${what} for ${digest} out of order: send blobs in the order of need_blobs (next: ${expected ?? 'none'})`, {
        reason: 'blob-out-of-order',
      });
    }
  }
}
