// The client side of the Export conversation (see ExportRequest in
// cache.proto): send the start and the graph, read need_blobs, stream just
// those blobs in that order with backpressure, half-close, await done.
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { CacheGraph } from '../cache/graph.js';
import type { CacheSpec } from '../cache/spec.js';
import type { TransferStats } from '../cache/transfer.js';
import { drained } from '../drain.js';
import { BkError, invalidArgument, notFound } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { contentStorePath } from '../store/local/layout.js';
import { blobChunkFrame, blobChunkHead, CHUNK_HEADROOM, ChunkBuffers } from './blob-chunk.js';
import { fromDaemon } from './answers.js';
import type { CallStatus, GrpcCall } from './grpc-call.js';
import type { WireExportRequest, WireExportResponse, WireProgress } from '../api/proto.js';
import { fromServiceError } from '../api/status.js';
import { descriptorFromWire, graphToWire, specToWire, splitGraph, statsFromWire } from '../api/wire.js';

/**
 * Where the daemon gets layer blobs it lacks. `contentStoreDir`: a directory
 * laid out blobs/<alg>/<hex> (buildkitd's or containerd's content store); the
 * daemon reads it directly when it can see it, else the client reads it and
 * streams. Set `daemonCanRead: false` when the daemon cannot see it (another
 * container or host) so it is not asked to look. `open`: a function returning
 * the blob's bytes.
 */
export type BlobProvider =
  | { contentStoreDir: string; daemonCanRead?: boolean }
  | { open(desc: Descriptor): Readable | AsyncIterable<Uint8Array> | Promise<Readable | AsyncIterable<Uint8Array>> };

export interface ExportProgress {
  kind: 'blob' | 'config' | 'manifest' | 'tag' | string;
  digest: string;
  size: number;
  status: string;
  sent: number;
  tag: string;
}

export interface ExportOptions {
  signal?: AbortSignal;
  /** Deadline for the whole export, in milliseconds from now. */
  timeoutMs?: number;
  onProgress?: (p: ExportProgress) => void;
  /** Size of the blob chunks sent (default 1 MiB; must stay under the daemon's message limit). */
  chunkBytes?: number;
}

export interface ExportOutcome {
  /** Undefined when the graph had no layers and nothing was written. */
  manifest?: Descriptor;
  config?: Descriptor;
  target: string;
  tag: string;
  /** Daemon-side statistics; receivedBytes counts blob bytes this call carried. */
  stats: TransferStats & { receivedBytes: number };
  warnings: string[];
  /** The digests the daemon asked for (need_blobs). */
  requested: string[];
  /** Blob bytes this client sent. */
  sentBytes: number;
}

/** Pieces of an open() stream at least this large are sent without a copy. */
const SEND_AS_IS_BYTES = 256 << 10;

/** Blob chunks written but not yet on the socket: enough to keep it busy. */
const CHUNKS_IN_FLIGHT = 4;

type Call = GrpcCall<WireExportRequest, WireExportResponse>;

/** The layer descriptors of a graph by digest: what `open` is called with. */
function layersOf(graph: CacheGraph): Map<string, Descriptor> {
  const m = new Map<string, Descriptor>();
  for (const n of graph.nodes) for (const l of n.result?.layers ?? []) if (!m.has(l.digest)) m.set(l.digest, l);
  return m;
}

export function runExport(call: Call, target: string | CacheSpec, graph: CacheGraph, blobs: BlobProvider, opts: ExportOptions = {}): Promise<ExportOutcome> {
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const layers = layersOf(graph);
  const dir = 'contentStoreDir' in blobs ? blobs.contentStoreDir : undefined;
  /** The directory named to the daemon: none when it was told it cannot read it. */
  const sharedDir = 'contentStoreDir' in blobs && blobs.daemonCanRead !== false ? blobs.contentStoreDir : '';
  let requested: string[] = [];
  let asked = false;
  let sentBytes = 0;
  let done: WireExportResponse['done'];
  let failed: BkError | undefined;

  return new Promise<ExportOutcome>((resolve, reject) => {
    let current: AsyncIterable<Uint8Array> | undefined;
    // Chunks are read straight into pooled buffers with room for the message
    // header in front (blob-chunk.ts): one buffer per chunk in flight, reused.
    const pool = new ChunkBuffers(CHUNK_HEADROOM + chunkBytes, CHUNKS_IN_FLIGHT);
    /** Ends the sending side: whatever is still being read or sent stops with `err`. */
    const stop = (err: BkError) => {
      failed = err;
      pool.close();
      call.cancel();
      // Stop reading the blob being sent, so a stalled source does not keep the loop alive.
      (current as Readable | undefined)?.destroy?.();
    };
    const fail = (err: BkError) => {
      if (failed) return;
      stop(err);
      reject(err);
    };
    const onAbort = () => fail(new BkError('CANCELLED', 'export cancelled'));
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    // Buffers are an ExportRequest already encoded and framed (blob chunks, see blob-chunk.ts).
    const write = async (m: WireExportRequest | Buffer | Buffer[], written?: () => void) => {
      if (failed) throw failed;
      // Wait for HTTP/2 flow control: nothing more than a few chunks is queued in memory.
      if (!call.write(m, written)) await drained(call);
      if (failed) throw failed;
    };

    const sendChunk = async (buf: Buffer, length: number, d: Descriptor, offset: number) => {
      await write(blobChunkFrame(buf, CHUNK_HEADROOM, length, d.digest, offset), () => pool.give(buf));
      sentBytes += length;
    };

    // From a content store: the next chunk is read while this one is sent.
    const sendFile = async (d: Descriptor, file: string) => {
      const fh = await fs.open(file).catch((e: Error) => {
        throw notFound(`blob ${d.digest} not in ${dir}: ${e.message}`);
      });
      const read = async (pos: number) => {
        const buf = await pool.take();
        try {
          const { bytesRead } = await fh.read(buf, CHUNK_HEADROOM, Math.min(chunkBytes, d.size - pos), pos);
          return { buf, bytesRead };
        } catch (err) {
          pool.give(buf);
          throw err;
        }
      };
      let next: ReturnType<typeof read> | undefined;
      try {
        let offset = 0;
        next = d.size > 0 ? read(0) : undefined;
        while (next) {
          const { buf, bytesRead } = await next;
          if (bytesRead === 0) {
            // A file shorter than its descriptor: the daemon reports the size mismatch.
            pool.give(buf);
            break;
          }
          const end = offset + bytesRead;
          next = end < d.size ? read(end) : undefined;
          next?.catch(() => undefined); // awaited on the next turn; not an unhandled rejection meanwhile
          await sendChunk(buf, bytesRead, d, offset);
          offset = end;
        }
      } finally {
        await next?.then(({ buf }) => pool.give(buf)).catch(() => undefined);
        await fh.close();
      }
    };

    // From the solver's streams. A large piece goes out as it is, behind a
    // small head (prefix and header), so nothing is copied; small pieces are
    // gathered in a pooled buffer, so that messages stay near chunkBytes.
    const sendStream = async (d: Descriptor) => {
      let offset = 0;
      let buf: Buffer | undefined;
      let filled = 0;
      const flush = async () => {
        if (!buf) return;
        const [b, n] = [buf, filled];
        buf = undefined;
        filled = 0;
        await sendChunk(b, n, d, offset);
        offset += n;
      };
      const src = (current = await (blobs as Extract<BlobProvider, { open: unknown }>).open(d));
      try {
        for await (const piece of src) {
          const c = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.length);
          for (let i = 0; i < c.length; ) {
            if (!buf && c.length - i >= SEND_AS_IS_BYTES) {
              const n = Math.min(chunkBytes, c.length - i);
              await write([blobChunkHead(d.digest, offset, n), c.subarray(i, i + n)]);
              sentBytes += n;
              offset += n;
              i += n;
              continue;
            }
            buf ??= await pool.take();
            const n = Math.min(chunkBytes - filled, c.length - i);
            c.copy(buf, CHUNK_HEADROOM + filled, i, i + n);
            filled += n;
            i += n;
            if (filled === chunkBytes) await flush();
          }
        }
        await flush();
      } finally {
        if (buf) pool.give(buf);
        (src as Readable).destroy?.();
      }
    };

    const sendBlobs = async (digests: string[]) => {
      for (const digest of digests) {
        const d = layers.get(digest);
        if (!d) throw invalidArgument(`the daemon asked for ${digest}, which is not a layer of the graph`);
        if (dir) await sendFile(d, contentStorePath(dir, d.digest));
        else await sendStream(d);
        await write({ msg: 'blob_done', blob_done: { digest } });
      }
      if (!failed) call.end();
    };

    call.on('data', (m: WireExportResponse) => {
      if (m.msg === 'need_blobs') {
        // Once, each blob once: a second list (or a repeat) would send blobs twice, interleaved.
        const digests = m.need_blobs?.digests ?? [];
        if (asked || new Set(digests).size !== digests.length) {
          fail(new BkError('INTERNAL', `the daemon asked for blobs ${asked ? 'a second time' : 'more than once in one list'}`, { reason: 'malformed-response' }));
          return;
        }
        asked = true;
        requested = digests;
        sendBlobs(requested).catch((err) => fail(fromServiceError(err)));
      } else if (m.msg === 'progress' && m.progress) {
        opts.onProgress?.(m.progress as WireProgress);
      } else if (m.msg === 'done') {
        done = m.done;
      }
    });
    // The status comes last, after every response message.
    call.on('status', (st: CallStatus) => {
      if (st.code !== 0) return fail(fromServiceError(st));
      if (failed) return;
      opts.signal?.removeEventListener('abort', onAbort);
      if (!done) return fail(new BkError('INTERNAL', 'the daemon ended the export without a result'));
      const d = done;
      // Decoded here, in the call's event: a throw would escape to the process, and the promise never settle.
      let outcome: ExportOutcome;
      try {
        outcome = fromDaemon('Export result', () => ({
          manifest: d.manifest ? descriptorFromWire(d.manifest, 'manifest') : undefined,
          config: d.config ? descriptorFromWire(d.config, 'config') : undefined,
          target: d.target,
          tag: d.tag,
          stats: statsFromWire(d.stats),
          warnings: d.warnings ?? [],
          requested,
          sentBytes,
        }));
      } catch (err) {
        return fail(err as BkError);
      }
      resolve(outcome);
      // A daemon that is done before every blob was sent (it found one stored meanwhile, or lies) needs no
      // more: the rest of a blob is not read from the solver's source after the call is over.
      stop(new BkError('CANCELLED', 'the export call has ended'));
    });

    void (async () => {
      await write({ msg: 'start', start: { target: specToWire(target) } });
      for (const part of splitGraph(graphToWire(graph))) await write({ msg: 'graph', graph: part });
      await write({ msg: 'graph_done', graph_done: { content_store_dir: sharedDir } });
    })().catch((err) => fail(fromServiceError(err)));
  });
}
