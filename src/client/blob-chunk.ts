// Export's blob_chunk messages, protobuf-encoded and gRPC-framed by hand.
//
// Why: with the generated encoder and grpc-js every MiB a client streams was
// allocated three times (the read, the protobuf message, the framed copy) and
// copied twice, and in Node those large short-lived Buffers are what drives
// garbage collection: GC was the client's largest cost in the Export
// benchmark. Writing the few prefix and header bytes ourselves lets a chunk
// be read from disk straight into the buffer that goes to the socket
// (grpc-call.ts sends it), so nothing is allocated or copied per chunk.
//
// The bytes are ExportRequest{blob_chunk: BlobChunk{digest, offset, data}}
// (proto/bkcache/v1/cache.proto), in the protobuf wire format:
// https://protobuf.dev/programming-guides/encoding/
// Any protobuf decoder reads them; test/client/blob-chunk.test.ts checks it
// against the daemon's.
import { FRAME_PREFIX, putFramePrefix } from './grpc-call.js';

/** Bytes reserved in front of a chunk's data for its gRPC prefix and header; enough for any sha256/sha512 digest. */
export const CHUNK_HEADROOM = 256;

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

// Field numbers from cache.proto.
const EXPORT_REQUEST_BLOB_CHUNK = 4;
const BLOB_CHUNK_DIGEST = 1;
const BLOB_CHUNK_OFFSET = 2;
const BLOB_CHUNK_DATA = 3;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes `n` (a non-negative safe integer; offsets pass 2^32) as a varint; returns the next position. */
function putVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** The header of a blob_chunk message whose data is `dataLength` bytes long: everything before the data. */
export function blobChunkHeader(digest: string, offset: number, dataLength: number): Buffer {
  const layout = headerLayout(digest, offset, dataLength);
  const h = Buffer.allocUnsafe(layout.size);
  putHeader(h, 0, digest, offset, dataLength, layout);
  return h;
}

/** The gRPC prefix and the header of a blob_chunk message: everything of its frame before the data. */
export function blobChunkHead(digest: string, offset: number, dataLength: number): Buffer {
  const layout = headerLayout(digest, offset, dataLength);
  const h = Buffer.allocUnsafe(FRAME_PREFIX + layout.size);
  putFramePrefix(h, 0, layout.size + dataLength);
  putHeader(h, FRAME_PREFIX, digest, offset, dataLength, layout);
  return h;
}

/**
 * The gRPC frame (Length-Prefixed-Message, see grpc-call.ts) of the message
 * for data already sitting in `buf` at [dataStart, dataStart + dataLength):
 * prefix and header are written into the room in front of the data when
 * there is enough (CHUNK_HEADROOM), so the result is a view of `buf` and
 * nothing is allocated or copied; otherwise they are joined with the data.
 */
export function blobChunkFrame(buf: Buffer, dataStart: number, dataLength: number, digest: string, offset: number): Buffer {
  const layout = headerLayout(digest, offset, dataLength);
  const start = dataStart - layout.size - FRAME_PREFIX;
  if (start < 0) return Buffer.concat([blobChunkHead(digest, offset, dataLength), buf.subarray(dataStart, dataStart + dataLength)]);
  putFramePrefix(buf, start, layout.size + dataLength);
  putHeader(buf, start + FRAME_PREFIX, digest, offset, dataLength, layout);
  return buf.subarray(start, dataStart + dataLength);
}

interface HeaderLayout {
  /** Bytes of the digest, UTF-8. */
  digestBytes: number;
  /** Length of the BlobChunk message (the ExportRequest field's payload). */
  inner: number;
  /** Bytes of the header: the whole message but the data. */
  size: number;
}

function headerLayout(digest: string, offset: number, dataLength: number): HeaderLayout {
  const digestBytes = Buffer.byteLength(digest, 'utf8');
  // Field order as protobuf encoders write it; proto3 leaves a zero offset out.
  const inner =
    1 + varintSize(digestBytes) + digestBytes + (offset > 0 ? 1 + varintSize(offset) : 0) + 1 + varintSize(dataLength) + dataLength;
  return { digestBytes, inner, size: 1 + varintSize(inner) + inner - dataLength };
}

/** Writes the header laid out by headerLayout() at `buf[p]`. */
function putHeader(buf: Buffer, p: number, digest: string, offset: number, dataLength: number, layout: HeaderLayout): void {
  buf[p++] = tag(EXPORT_REQUEST_BLOB_CHUNK, WIRE_LEN);
  p = putVarint(buf, p, layout.inner);
  buf[p++] = tag(BLOB_CHUNK_DIGEST, WIRE_LEN);
  p = putVarint(buf, p, layout.digestBytes);
  p += buf.write(digest, p, 'utf8');
  if (offset > 0) {
    buf[p++] = tag(BLOB_CHUNK_OFFSET, WIRE_VARINT);
    p = putVarint(buf, p, offset);
  }
  buf[p++] = tag(BLOB_CHUNK_DATA, WIRE_LEN);
  putVarint(buf, p, dataLength);
}

/**
 * Reusable buffers for blob chunk messages, so streaming a blob allocates a
 * few buffers rather than one per chunk. A buffer goes back to the pool when
 * the write callback of the frame made from it fires: node's HTTP/2 calls it
 * once the bytes were written to the socket (or the stream was destroyed),
 * so by then nothing refers to the buffer any more. `max` also bounds how many chunks are in
 * flight: take() waits until one is given back.
 */
export class ChunkBuffers {
  private readonly free: Buffer[] = [];
  private readonly waiting: (() => void)[] = [];
  private out = 0;
  private closed = false;

  constructor(
    readonly size: number,
    private readonly max: number,
  ) {}

  async take(): Promise<Buffer> {
    while (!this.closed && this.free.length === 0 && this.out >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.out++;
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  give(buf: Buffer): void {
    this.out--;
    if (!this.closed) this.free.push(buf);
    this.waiting.shift()?.();
  }

  /** Wakes every waiter and stops pooling (the export failed; callbacks may never come). */
  close(): void {
    this.closed = true;
    this.free.length = 0;
    for (const w of this.waiting.splice(0)) w();
  }
}
