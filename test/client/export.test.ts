// What the client's side of Export writes, message by message: observed on a
// stand-in for the call, since the daemon only sees the bytes joined again.
// The real conversation with a daemon is in client.test.ts.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CacheGraph } from '../../src/cache/graph.js';
import { FRAME_PREFIX, type GrpcCall } from '../../src/client/grpc-call.js';
import { runExport } from '../../src/client/export.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes } from '../../src/oci/digest.js';
import { cacheProto, type WireExportRequest, type WireExportResponse } from '../../src/api/proto.js';

const decode = (b: Buffer) => cacheProto().service.Export!.requestDeserialize(b) as WireExportRequest;

/** Answers need_blobs for every layer after graph_done, and done after the half-close. */
class RecordingCall extends EventEmitter {
  writes: (WireExportRequest | Buffer | Buffer[])[] = [];
  constructor(private readonly need: string[]) {
    super();
  }
  write(m: WireExportRequest | Buffer | Buffer[], written?: () => void): boolean {
    this.writes.push(m);
    if (!Buffer.isBuffer(m) && !Array.isArray(m) && m.msg === 'graph_done') {
      setImmediate(() => this.emit('data', { msg: 'need_blobs', need_blobs: { digests: this.need } } as WireExportResponse));
    }
    if (written) setImmediate(written);
    return true;
  }
  end(): void {
    setImmediate(() => {
      this.emit('data', { msg: 'done', done: { target: 'x', tag: '', warnings: [] } } as unknown as WireExportResponse);
      this.emit('status', { code: 0, details: '' });
    });
  }
  cancel(): void {}
  /** The blob_chunk messages, decoded, with whether each was sent as pieces. */
  chunks() {
    return this.writes
      .filter((m) => Buffer.isBuffer(m) || Array.isArray(m))
      .map((m) => {
        const frame = Buffer.isBuffer(m) ? m : Buffer.concat(m);
        expect(frame.readUInt32BE(1)).toBe(frame.length - FRAME_PREFIX);
        return { chunk: decode(frame.subarray(FRAME_PREFIX)).blob_chunk!, pieces: Array.isArray(m) ? m : undefined };
      });
  }
}

describe('Export blob streaming (client side)', () => {
  it('gathers small open() pieces into full chunks and sends large ones as they are, without copying', async () => {
    const sizes = [1000, 300_000, 5, 2_000_000, 10];
    const pieces = sizes.map((n, i) => new Uint8Array(n).fill(i + 1));
    const blob = Buffer.concat(pieces);
    const d: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestBytes(blob), size: blob.length };
    const g = new CacheGraph();
    g.add(digestBytes('rec')).addResult('2026-01-01T00:00:00Z', [d]);
    const call = new RecordingCall([d.digest]);
    const res = await runExport(call as unknown as GrpcCall<WireExportRequest, WireExportResponse>, 'type=local', g, {
      open: () => Readable.from(pieces),
    });
    expect(res.sentBytes).toBe(blob.length);
    const chunks = call.chunks();
    // 1000 + 300 000 + 5 and the first 747 571 bytes of the large piece fill a 1 MiB chunk; the next MiB of
    // the large piece goes as it is; its last 203 853 bytes and the final 10 are gathered again.
    expect(chunks.map((c) => [Number(c.chunk.offset), c.chunk.data.length, !!c.pieces])).toEqual([
      [0, 1 << 20, false],
      [1 << 20, 1 << 20, true],
      [2 << 20, 203_863, false],
    ]);
    expect(Buffer.concat(chunks.map((c) => Buffer.from(c.chunk.data))).equals(blob)).toBe(true);
    // The piece sent as it is is a view of the solver's own bytes.
    expect(chunks[1]!.pieces![1]!.buffer).toBe(pieces[3]!.buffer);
    // Then blob_done, and the half-close.
    expect(call.writes.at(-1)).toMatchObject({ msg: 'blob_done', blob_done: { digest: d.digest } });
  });
});
