// The client library against an in-process daemon: the export conversation,
// import, inspect, fetchBlob, copy, health. The same flows against the real
// `bkcache serve` process are in integration/sidecar.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import http2 from 'node:http2';
import net from 'node:net';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheGraph, connect, type CacheClient } from '../../src/client/index.js';
import { digestBytes } from '../../src/oci/digest.js';
import { remoteCopy, remoteInspect } from '../../src/cli/remote.js';
import { copyCache, inspectCache } from '../../src/cache/operations.js';
import { jsonLogger } from '../../src/server/log.js';
import { defaultConfig } from '../../src/server/config.js';
import { Daemon } from '../../src/server/server.js';
import { MAX_FRAME_BYTES, RECEIVE_WINDOW_BYTES } from '../../src/server/tuning.js';
import { BK } from '../fixtures.js';
import { synthetic, writeContentStore } from './synthetic.js';

const require = createRequire(import.meta.url);
let tmp: string;
let daemon: Daemon;
let client: CacheClient;
let addr: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-client-'));
  const cfg = { ...defaultConfig(), listen: [`unix://${tmp}/d.sock`], root: path.join(tmp, 'root'), metricsAddr: '127.0.0.1:0', logLevel: 'off' as const };
  daemon = new Daemon(cfg, jsonLogger('off'));
  await daemon.start();
  addr = daemon.addresses[0]!;
  client = connect(addr);
});

afterAll(async () => {
  client?.close();
  await daemon?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

describe('client library', () => {
  it('reports SERVING on the health service', async () => {
    expect(await client.health()).toBe('SERVING');
    expect(await client.health('bkcache.v1.CacheService')).toBe('SERVING');
  });

  it('exports a graph, imports it back, and sends no layer bytes the second time', async () => {
    const s = synthetic();
    const dest = path.join(tmp, 'c1');
    const first = await client.export(`type=local,dest=${dest},mode=max`, s.graph, s.provider);
    expect(first.manifest?.digest).toMatch(/^sha256:/);
    expect(new Set(first.requested)).toEqual(new Set(s.blobs.keys()));
    expect(first.stats.uploaded).toBe(s.blobs.size);
    expect(first.stats.receivedBytes).toBe([...s.blobs.values()].reduce((n, b) => n + b.length, 0));

    const imp = await client.import([`type=local,src=${dest}`]);
    expect(imp.hit?.index).toBe(0);
    expect(imp.hit?.manifest.digest).toBe(first.manifest!.digest);
    expect(imp.graph.marshal().config).toEqual(s.graph.marshal().config);
    for (const [digest, data] of s.blobs) expect((await client.readBlob(`type=local,src=${dest}`, digest)).equals(data)).toBe(true);

    const again = await client.export(`type=local,dest=${dest},mode=max`, imp.graph, s.provider);
    expect(again.requested).toEqual([]);
    expect(again.sentBytes).toBe(0);
    expect(again.stats.receivedBytes).toBe(0);
    expect(again.stats.skipped).toBe(s.blobs.size);
    expect(again.manifest?.digest).toBe(first.manifest!.digest);
  });

  it('reads blobs from a content store directory without streaming them', async () => {
    const s = synthetic([100_000, 1_500_000]);
    const store = path.join(tmp, 'content');
    writeContentStore(store, s.blobs);
    const res = await client.export('type=local,tag=cs', s.graph, { contentStoreDir: store });
    expect(res.requested).toEqual([]);
    expect(res.stats.uploaded).toBe(s.blobs.size);
    expect(res.stats.receivedBytes).toBe(0);
    // The embedded store is the default place: type=local with no src.
    const info = await client.inspect('type=local,tag=cs');
    expect(info.summary.manifest).toBe(res.manifest!.digest);
    expect(info.summary.kind).toBe('image-manifest');
  });

  it('streams a content store the daemon is told it cannot read, chunk by chunk from pooled buffers', async () => {
    // Sizes around the chunk size: empty tail, one byte over, several chunks.
    const s = synthetic([1 << 16, (1 << 16) + 1, 5 * (1 << 16) + 7]);
    const store = path.join(tmp, 'content-private');
    writeContentStore(store, s.blobs);
    const total = [...s.blobs.values()].reduce((n, b) => n + b.length, 0);
    const dest = path.join(tmp, 'c-private');
    const res = await client.export(`type=local,dest=${dest}`, s.graph, { contentStoreDir: store, daemonCanRead: false }, { chunkBytes: 1 << 16 });
    expect(res.requested.length).toBe(s.blobs.size);
    expect(res.sentBytes).toBe(total);
    expect(res.stats.receivedBytes).toBe(total);
    // Every blob landed intact (the daemon verified each digest while writing it).
    for (const [digest, bytes] of s.blobs) expect((await client.readBlob(`type=local,src=${dest}`, digest, {})).equals(bytes)).toBe(true);
  });

  it('reports a blob missing from the client-read content store as NOT_FOUND', async () => {
    const s = synthetic([10_000]);
    const store = path.join(tmp, 'content-empty');
    writeContentStore(store, new Map());
    await expect(client.export(`type=local,dest=${path.join(tmp, 'c-missing')}`, s.graph, { contentStoreDir: store, daemonCanRead: false })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('export on a closed client, or with a token HTTP/2 cannot carry, is refused with a typed error', async () => {
    const s = synthetic([10]);
    const closed = connect(addr);
    closed.close();
    await expect(closed.export(`type=local,dest=${path.join(tmp, 'never')}`, s.graph, s.provider)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const badToken = connect(addr, { token: 'abc\ndef' });
    await expect(badToken.export(`type=local,dest=${path.join(tmp, 'never')}`, s.graph, s.provider)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(badToken.health()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    badToken.close();
  });

  it('exports a graph without layers as nothing, with a warning', async () => {
    const g = new CacheGraph();
    g.add(digestBytes('no-layers'));
    const res = await client.export(`type=local,dest=${path.join(tmp, 'empty')}`, g, { open: () => Readable.from([]) });
    expect(res.manifest).toBeUndefined();
    expect(res.requested).toEqual([]);
    expect(res.warnings).toEqual(['no cache record has layers; nothing exported']);
  });

  it('advertises the widened HTTP/2 window and 1 MiB frames', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(addr.slice('unix://'.length)) });
    try {
      await new Promise<void>((resolve, reject) => session.once('remoteSettings', () => resolve()).once('error', reject));
      expect(session.remoteSettings.maxFrameSize).toBe(MAX_FRAME_BYTES);
      expect(session.remoteSettings.initialWindowSize).toBe(RECEIVE_WINDOW_BYTES);
    } finally {
      session.destroy();
    }
  });

  it('serves fetchBlob from an offset, and by full descriptor', async () => {
    const s = synthetic([3_000_000]);
    const dest = path.join(tmp, 'c3');
    await client.export(`type=local,dest=${dest}`, s.graph, s.provider);
    const [d] = s.layers;
    const tail = await client.readBlob(`type=local,src=${dest}`, d!.digest, {});
    expect(tail.equals(s.blobs.get(d!.digest)!)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const c of client.fetchBlob(`type=local,src=${dest}`, d!, { offset: 1_000_001 })) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(s.blobs.get(d!.digest)!.subarray(1_000_001))).toBe(true);
  });

  it('remoteInspect and remoteCopy return what the in-process functions return', async () => {
    const src = `type=local,src=${path.join(BK, 'local-index-max')}`;
    const local = await inspectCache({ type: 'local', attrs: { src: path.join(BK, 'local-index-max') } });
    const remote = await remoteInspect(connect(addr), src);
    expect(remote.summary).toEqual(local.summary);
    expect(remote.loaded.manifest).toEqual(local.loaded.manifest);

    const destA = path.join(tmp, 'copy-a');
    const destB = path.join(tmp, 'copy-b');
    const a = await copyCache([{ type: 'local', attrs: { src: path.join(BK, 'local-index-max') } }], { type: 'local', attrs: { dest: destA } });
    const b = await remoteCopy(connect(addr), [src], `type=local,dest=${destB}`);
    expect(b.manifest).toEqual(a.manifest);
    expect(b.config).toEqual(a.config);
    expect(b.stats).toEqual(a.stats);
    expect(b.sources).toEqual(a.sources);
  });

  it('copyCache takes fallback chains as sources, and mounts only from stores it is allowed to', async () => {
    const present = { type: 'local', attrs: { src: path.join(BK, 'local-index-max') } };
    const missing = { type: 'local', attrs: { src: path.join(tmp, 'no-cache-here') } };
    const asked: string[] = [];
    const res = await copyCache([[missing, present]], { type: 'local', attrs: { dest: path.join(tmp, 'copy-chain') } }, {}, {
      mayMountFrom: (s) => (asked.push(s.location), false),
    });
    expect(res.sources.map((x) => x.spec)).toEqual([`type=local,src=${path.join(BK, 'local-index-max')}`]);
    expect(res.manifest?.digest).toMatch(/^sha256:/);
    // Only the store that hit was asked about; a local target mounts nothing, so the answer changes nothing here.
    expect(new Set(asked)).toEqual(new Set([`local:${path.join(BK, 'local-index-max')}`]));
    // A chain whose every source is missing is NOT_FOUND, as a single missing source is.
    await expect(copyCache([[missing]], { type: 'local', attrs: { dest: path.join(tmp, 'copy-none') } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('honors deadlines and cancellation: no tag, slots released', async () => {
    const s = synthetic([200_000]);
    // Blobs that never finish: the call can only end by deadline or cancel.
    const stuck = { open: () => new Readable({ read() {} }) };
    const dest = path.join(tmp, 'deadline');
    await expect(client.export(`type=local,dest=${dest}`, s.graph, stuck, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(client.export(`type=local,dest=${dest}`, s.graph, stuck, { signal: ac.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
    // Aborted before the call: refused without a connection to the daemon.
    const fresh = connect(`unix://${path.join(tmp, 'no-daemon-here.sock')}`);
    await expect(fresh.export(`type=local,dest=${dest}`, s.graph, stuck, { signal: ac.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
    fresh.close();
    expect((await client.import([`type=local,src=${dest}`])).hit).toBeUndefined();
    await expect.poll(() => daemon.ctx.exportSlots.inUse).toBe(0);
  });

  it('lists its services through server reflection', async () => {
    const file = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true, oneofs: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    type Reply = { list_services_response?: { service: { name: string }[] } };
    const rc = new pkg.grpc.reflection.v1.ServerReflection(`unix://${tmp}/d.sock`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, Reply>;
    };
    const call = rc.ServerReflectionInfo();
    const names = await new Promise<string[]>((resolve, reject) => {
      call.on('data', (m: Reply) => resolve(m.list_services_response?.service.map((x) => x.name) ?? []));
      call.on('error', reject);
      call.write({ list_services: '' });
    });
    call.end();
    rc.close();
    expect(names).toEqual(expect.arrayContaining(['bkcache.v1.CacheService', 'grpc.health.v1.Health']));
  });

  it('serves Prometheus metrics', async () => {
    const res = await fetch(`http://${daemon.metricsAddress}/metrics`);
    const text = await res.text();
    expect(text).toContain('bkcache_requests_total{method="Export",code="OK"}');
    expect(text).toContain('bkcache_bytes_total{direction="received"}');
    expect(text).toContain('bkcache_request_duration_seconds_bucket{method="Import",le="+Inf"}');
  });
});
