// Hand-encoded blob_chunk messages must decode, with the daemon's own
// protobuf definitions, to exactly what was meant.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blobChunkFrame, blobChunkHead, blobChunkHeader, CHUNK_HEADROOM, ChunkBuffers } from '../../src/client/blob-chunk.js';
import { FRAME_PREFIX } from '../../src/client/grpc-call.js';
import { digestBytes } from '../../src/oci/digest.js';
import { cacheProto, type WireExportRequest } from '../../src/api/proto.js';

const decode = (b: Buffer) => cacheProto().service.Export!.requestDeserialize(b) as WireExportRequest;
/** Checks the gRPC prefix (uncompressed, length of the rest) and decodes the message behind it. */
const unframe = (f: Buffer) => {
  expect(f[0]).toBe(0);
  expect(f.readUInt32BE(1)).toBe(f.length - FRAME_PREFIX);
  return decode(f.subarray(FRAME_PREFIX));
};
const sha512 = `sha512:${'ab'.repeat(64)}`;

describe('blob chunk encoding', () => {
  it.each([
    ['sha256, offset 0', digestBytes('x'), 0, 1000],
    ['sha256, small offset', digestBytes('y'), 300, 1],
    ['sha512, offset past 2^32', sha512, 2 ** 32 + 12345, 70_000],
    ['offset near 2^53', digestBytes('z'), Number.MAX_SAFE_INTEGER - 5, 3],
    ['empty data', digestBytes('e'), 42, 0],
  ])('decodes with the proto definitions: %s', (_name, digest, offset, length) => {
    const data = randomBytes(length);
    const buf = Buffer.alloc(CHUNK_HEADROOM + length);
    data.copy(buf, CHUNK_HEADROOM);
    const m = unframe(blobChunkFrame(buf, CHUNK_HEADROOM, length, digest, offset));
    expect(m.msg).toBe('blob_chunk');
    expect(m.blob_chunk!.digest).toBe(digest);
    expect(Number(m.blob_chunk!.offset)).toBe(offset);
    expect(Buffer.from(m.blob_chunk!.data).equals(data)).toBe(true);
  });

  it('is byte-identical to the generated encoder', () => {
    const data = randomBytes(5000);
    const digest = digestBytes('same');
    const ours = Buffer.concat([blobChunkHeader(digest, 777, data.length), data]);
    const theirs = cacheProto().service.Export!.requestSerialize({ msg: 'blob_chunk', blob_chunk: { digest, offset: 777, data } });
    expect(ours.equals(theirs)).toBe(true);
  });

  it('blobChunkHead is the frame before the data: prefix and header', () => {
    const data = randomBytes(3000);
    const digest = digestBytes('head');
    const m = unframe(Buffer.concat([blobChunkHead(digest, 2 ** 40, data.length), data]));
    expect(Number(m.blob_chunk!.offset)).toBe(2 ** 40);
    expect(Buffer.from(m.blob_chunk!.data).equals(data)).toBe(true);
  });

  it('writes prefix and header into the room in front of the data, copying nothing', () => {
    const buf = Buffer.alloc(CHUNK_HEADROOM + 10, 7);
    const m = blobChunkFrame(buf, CHUNK_HEADROOM, 10, digestBytes('v'), 5);
    expect(m.buffer).toBe(buf.buffer);
    expect(m.byteOffset + m.length).toBe(buf.byteOffset + CHUNK_HEADROOM + 10);
  });

  it.each([0, 20])('joins prefix, header and data when there is no room (%i bytes)', (room) => {
    const buf = Buffer.alloc(room + 10, 7);
    const m = blobChunkFrame(buf, room, 10, digestBytes('w'), 0);
    expect(m.buffer).not.toBe(buf.buffer);
    expect(Buffer.from(unframe(m).blob_chunk!.data).equals(buf.subarray(room))).toBe(true);
  });
});

describe('ChunkBuffers', () => {
  it('hands out at most `max` buffers, reuses given-back ones, and wakes waiters', async () => {
    const pool = new ChunkBuffers(16, 2);
    const a = await pool.take();
    const b = await pool.take();
    expect(a).not.toBe(b);
    let third: Buffer | undefined;
    const waiting = pool.take().then((x) => (third = x));
    await new Promise((r) => setImmediate(r));
    expect(third).toBeUndefined();
    pool.give(a);
    await waiting;
    expect(third).toBe(a);
  });

  it('close() releases every waiter', async () => {
    const pool = new ChunkBuffers(16, 1);
    await pool.take();
    const waiting = pool.take();
    pool.close();
    await expect(waiting).resolves.toHaveLength(16);
  });
});
