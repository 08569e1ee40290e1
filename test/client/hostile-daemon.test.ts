// The client library against a daemon that lies: a grpc-js server on a unix
// socket in this process, answering with what no honest daemon sends. Every
// call ends with a typed BkError; nothing throws out of an event handler,
// hangs or delivers bytes that do not add up.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheGraph, connect, type CacheClient } from '../../src/client/index.js';
import { cacheProto, type WireExportRequest, type WireExportResponse, type WireFetchBlobRequest, type WireBlobChunk } from '../../src/api/proto.js';
import { digestBytes } from '../../src/oci/digest.js';
import type { Descriptor } from '../../src/oci/descriptor.js';

type Behaviour = {
  fetch?: (call: grpc.ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>) => void;
  export?: (call: grpc.ServerDuplexStream<WireExportRequest, WireExportResponse>) => void;
  import?: object;
};

let tmp: string;
let server: grpc.Server;
let client: CacheClient;
let behaviour: Behaviour = {};

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-liar-'));
  server = new grpc.Server();
  const unimplemented = (_call: unknown, cb?: (e: object) => void) => cb?.({ code: grpc.status.UNIMPLEMENTED });
  server.addService(cacheProto().service, {
    Export: (call: grpc.ServerDuplexStream<WireExportRequest, WireExportResponse>) => behaviour.export!(call),
    FetchBlob: (call: grpc.ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>) => behaviour.fetch!(call),
    Import: (_call: unknown, cb: (e: null, r: object) => void) => cb(null, behaviour.import!),
    Inspect: unimplemented,
    Copy: unimplemented,
    CopyStream: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
  });
  const addr = `unix://${tmp}/liar.sock`;
  await new Promise<void>((resolve, reject) => server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  client = connect(addr);
});

afterAll(async () => {
  client?.close();
  server?.forceShutdown();
  rmSync(tmp, { recursive: true, force: true });
});

const blob = Buffer.from('the bytes of a layer, long enough to split into several chunks');
const layer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestBytes(blob), size: blob.length };

/** Answers a FetchBlob with these chunks, then OK. */
function sends(chunks: { digest?: string; offset: number; data: Buffer }[]) {
  return (call: grpc.ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>) => {
    for (const c of chunks) call.write({ digest: c.digest ?? layer.digest, offset: c.offset, data: c.data });
    call.end();
  };
}

describe('FetchBlob from a daemon that lies', () => {
  it('refuses chunks whose offsets skip, overlap or go back, or that name another blob, with DATA_LOSS', async () => {
    const cases: [string, { digest?: string; offset: number; data: Buffer }[]][] = [
      ['skip', [{ offset: 0, data: blob.subarray(0, 10) }, { offset: 20, data: blob.subarray(20) }]],
      ['overlap', [{ offset: 0, data: blob.subarray(0, 10) }, { offset: 5, data: blob.subarray(5) }]],
      ['backwards', [{ offset: 10, data: blob.subarray(10) }, { offset: 0, data: blob.subarray(0, 10) }]],
      ['another blob', [{ offset: 0, digest: digestBytes('other'), data: blob }]],
    ];
    for (const [name, chunks] of cases) {
      behaviour = { fetch: sends(chunks) };
      await expect(client.readBlob('type=local', layer.digest), name).rejects.toMatchObject({ code: 'DATA_LOSS' });
    }
  });

  it('checks the whole blob against its digest and size, from offset 0', async () => {
    const wrong = Buffer.from(blob);
    wrong[3] ^= 1;
    behaviour = { fetch: sends([{ offset: 0, data: wrong }]) };
    await expect(client.readBlob('type=local', layer.digest)).rejects.toMatchObject({ code: 'DATA_LOSS' });
    behaviour = { fetch: sends([{ offset: 0, data: blob.subarray(0, 20) }]) };
    await expect(client.readBlob('type=local', layer)).rejects.toMatchObject({ code: 'DATA_LOSS' });
    behaviour = { fetch: sends([{ offset: 0, data: Buffer.concat([blob, Buffer.from('x')]) }]) };
    await expect(client.readBlob('type=local', layer)).rejects.toMatchObject({ code: 'DATA_LOSS' });
    // A descriptor with neither size nor media type is a bare digest to the daemon, and so to the check.
    behaviour = { fetch: sends([{ offset: 0, data: blob }]) };
    expect((await client.readBlob('type=local', { mediaType: '', digest: layer.digest, size: 0 })).equals(blob)).toBe(true);
    // The honest answer, in pieces, from 0 and from an offset.
    behaviour = { fetch: sends([{ offset: 0, data: blob.subarray(0, 7) }, { offset: 7, data: blob.subarray(7) }]) };
    expect((await client.readBlob('type=local', layer.digest)).equals(blob)).toBe(true);
    behaviour = { fetch: sends([{ offset: 9, data: blob.subarray(9, 30) }, { offset: 30, data: blob.subarray(30) }]) };
    const tail: Buffer[] = [];
    for await (const c of client.fetchBlob('type=local', layer, { offset: 9 })) tail.push(c as Buffer);
    expect(Buffer.concat(tail).equals(blob.subarray(9))).toBe(true);
  });
});

describe('Import from a daemon that lies', () => {
  it('a hit with a malformed manifest or a graph naming unknown records is INTERNAL, not the caller\'s INVALID_ARGUMENT', async () => {
    const summary = { kind: 'index', media_type: 'x', manifest: layer.digest, config: '', layers: 0, records: 0 };
    const bad = { media_type: 'x', digest: 'sha256:nope', size: 1, annotations: {}, urls: [] };
    behaviour = { import: { hit: true, hit_index: 0, manifest: bad, kind: 'index', summary, graph: null, misses: [], warnings: [], dropped: [] } };
    await expect(client.import(['type=local'])).rejects.toMatchObject({ code: 'INTERNAL', reason: 'malformed-response' });
    const graph = { records: [{ id: 0, digest: digestBytes('r'), hint: null }], links: [{ record_id: 0, src_id: 7, input: 0, selector: '' }], results: [] };
    behaviour = { import: { hit: false, hit_index: -1, manifest: null, kind: '', summary: null, graph, misses: [], warnings: [], dropped: [] } };
    await expect(client.import(['type=local'])).rejects.toMatchObject({ code: 'INTERNAL', reason: 'malformed-response' });
  });
});

describe('Export to a daemon that lies', () => {
  const graph = () => {
    const g = new CacheGraph();
    g.add(digestBytes('rec')).addResult('2026-01-01T00:00:00Z', [{ ...layer, annotations: { 'containerd.io/uncompressed': layer.digest } }]);
    return g;
  };
  const provider = { open: () => Readable.from([blob]) };

  /** Reads the client's messages; at graph_done and at the half-close, answers with `reply`. */
  function conversation(reply: { atGraphDone: WireExportResponse[]; atEnd: WireExportResponse[] }) {
    return (call: grpc.ServerDuplexStream<WireExportRequest, WireExportResponse>) => {
      call.on('data', (m: WireExportRequest) => {
        if (m.msg === 'graph_done') for (const r of reply.atGraphDone) call.write(r);
      });
      call.on('end', () => {
        for (const r of reply.atEnd) call.write(r);
        call.end();
      });
    };
  }

  it('a malformed result descriptor is a typed error, not an exception out of the call', async () => {
    behaviour = {
      export: conversation({
        atGraphDone: [{ msg: 'need_blobs', need_blobs: { digests: [] } } as unknown as WireExportResponse],
        atEnd: [{ msg: 'done', done: { manifest: { media_type: 'x', digest: 'not a digest', size: 1, annotations: {}, urls: [] }, target: 't', tag: '', warnings: [] } } as unknown as WireExportResponse],
      }),
    };
    await expect(client.export('type=local', graph(), provider)).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('a daemon done before the blobs it asked for were sent: the solver\'s source is not read on after the call', async () => {
    const need = { msg: 'need_blobs', need_blobs: { digests: [layer.digest] } } as unknown as WireExportResponse;
    const done = { msg: 'done', done: { manifest: null, target: 't', tag: '', warnings: [] } } as unknown as WireExportResponse;
    behaviour = {
      export: (call) => {
        call.on('data', (m: WireExportRequest) => {
          if (m.msg === 'graph_done') {
            call.write(need);
            call.write(done);
            call.end();
          }
        });
        call.on('error', () => undefined);
      },
    };
    // A source that never ends, as a huge layer would be for this test's purpose.
    const endless = new Readable({ read() { this.push(Buffer.alloc(64 << 10)); } });
    await client.export('type=local', graph(), { open: () => endless });
    for (let i = 0; i < 100 && !endless.destroyed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(endless.destroyed).toBe(true);
  });

  it('need_blobs twice, or naming a blob twice, is refused before a blob is sent twice', async () => {
    const need = { msg: 'need_blobs', need_blobs: { digests: [layer.digest] } } as unknown as WireExportResponse;
    const twice = { msg: 'need_blobs', need_blobs: { digests: [layer.digest, layer.digest] } } as unknown as WireExportResponse;
    const done = { msg: 'done', done: { manifest: null, target: 't', tag: '', warnings: [] } } as unknown as WireExportResponse;
    for (const atGraphDone of [[need, need], [twice]]) {
      let opened = 0;
      behaviour = { export: conversation({ atGraphDone, atEnd: [done] }) };
      const counting = { open: () => (opened++, Readable.from([blob])) };
      await expect(client.export('type=local', graph(), counting)).rejects.toMatchObject({ code: 'INTERNAL', reason: 'malformed-response' });
      expect(opened).toBeLessThanOrEqual(1);
    }
  });
});
