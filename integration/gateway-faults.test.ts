// A lying or failing upstream behind the gateway (the fault proxy in front of
// a real registry): tampered manifests are never passed on, outages become
// 503 after the registry client's retries, a body cut off upstream never
// reaches the client as a complete blob, and the gateway keeps serving. And
// clients that lie about a blob's digest or vanish mid-upload: the upstream
// never commits what they sent.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../src/gateway/server.js';
import type { Logger } from '../src/server/log.js';
import { tempDir } from '../test/tmp.js';
import { startFaultProxy, type FaultProxy } from './harness/fault-proxy.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const quiet: Logger = { debug: () => {}, info: () => {}, error: () => {} };
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const MT = 'application/vnd.oci.image.manifest.v1+json';

let reg: StartedRegistry;
let proxy: FaultProxy;
let gw: Gateway;
let base: string;
const blob = Buffer.alloc(3 << 20, 'x');
const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(blob), size: blob.length }, layers: [] }));

beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  gw = new Gateway(
    { listen: 'tcp://127.0.0.1:0', upstream: proxy.host, imageManifestOnly: false },
    { auth: { verify: { audience: 'bkcache' } }, backend: { registry: { hosts: { [proxy.host]: { insecure: true } } } }, root: tempDir('bkcache-gw-faults-'), log: quiet, allowUnauthenticatedTcp: false },
  );
  base = `http://${(await gw.start()).slice('tcp://'.length)}`;
  expect((await fetch(`${base}/v2/f/app/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: new Uint8Array(blob) })).status).toBe(201);
  expect((await fetch(`${base}/v2/f/app/manifests/v1`, { method: 'PUT', headers: { 'content-type': MT }, body: new Uint8Array(doc) })).status).toBe(201);
});
afterAll(async () => {
  await gw?.close();
  await proxy?.stop();
  await reg?.stop();
});

describe('a faulty upstream', () => {
  it('a tampered manifest is never passed on', async () => {
    proxy.rules.push({ name: 'tamper', match: (r) => r.method === 'GET' && r.path.includes('/manifests/sha256:'), action: { rewrite: (r) => void (r.body = Buffer.from(r.body.toString().replace('"schemaVersion":2', '"schemaVersion":3'))) } });
    try {
      const res = await fetch(`${base}/v2/f/app/manifests/${sha(doc)}`, { headers: { accept: MT } });
      expect(res.status).toBe(503);
      expect((await res.json()).errors[0].code).toBe('UNAVAILABLE');
    } finally {
      proxy.rules.length = 0;
    }
    expect((await fetch(`${base}/v2/f/app/manifests/${sha(doc)}`, { headers: { accept: MT } })).status).toBe(200);
  });

  it('a tags list or catalog that is not the list (not JSON, null, a string where the array goes) is a 503, never a 500', async () => {
    for (const body of ['<html>oops</html>', 'null', '{"tags":"v1","repositories":"f/app"}']) {
      proxy.rules.push({ name: 'garbage list', match: (r) => r.method === 'GET' && (r.path.includes('/tags/list') || r.path.includes('/_catalog')), action: { respond: 200, headers: { 'content-type': 'application/json' }, body } });
      try {
        for (const p of ['/v2/f/app/tags/list', '/v2/_catalog']) {
          const res = await fetch(`${base}${p}`);
          expect([p, res.status, (await res.json()).errors[0].code]).toEqual([p, 503, 'UNAVAILABLE']);
        }
      } finally {
        proxy.rules.length = 0;
      }
    }
    expect((await (await fetch(`${base}/v2/f/app/tags/list`)).json()).tags).toEqual(['v1']);
  });

  it('an upstream that keeps failing is a 503 after retries, and the gateway serves on', async () => {
    proxy.rules.push({ name: 'down', match: (r) => r.method === 'HEAD' && r.path.includes('/blobs/'), action: { respond: 503 } });
    try {
      const res = await fetch(`${base}/v2/f/app/blobs/${sha(blob)}`, { method: 'HEAD' });
      expect(res.status).toBe(503);
    } finally {
      proxy.rules.length = 0;
    }
    expect((await fetch(`${base}/v2/f/app/blobs/${sha(blob)}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('a PATCH the upstream says it took only part of: the upload is refused and cancelled, never committed', async () => {
    const data = Buffer.alloc(200_000, 'p');
    const start = await fetch(`${base}/v2/f/short/blobs/uploads/`, { method: 'POST' });
    proxy.rules.push({ name: 'short-range', match: (r) => r.method === 'PATCH', times: 1, action: { rewrite: (r) => void (r.headers.range = `0-${data.length - 1001}`) } });
    let patch: Response;
    try {
      patch = await fetch(`${base}${start.headers.get('location')}`, { method: 'PATCH', body: new Uint8Array(data) });
    } finally {
      proxy.rules.length = 0;
    }
    expect(patch.status).toBe(400);
    expect((await patch.json()).errors[0].code).toBe('BLOB_UPLOAD_INVALID');
    expect(proxy.log.some((l) => l.method === 'DELETE' && l.path.includes('/blobs/uploads/'))).toBe(true);
    const put = await fetch(`${base}${start.headers.get('location')}?digest=${sha(data)}`, { method: 'PUT' });
    expect(put.status).toBeGreaterThanOrEqual(400);
    expect((await fetch(`${reg.url}/v2/f/short/blobs/${sha(data)}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('a PATCH cut off before the upstream took it leaves the state where it was: the same location retries and commits verified', async () => {
    const data = Buffer.alloc(300_000, 'r');
    const loc = (await fetch(`${base}/v2/f/retry/blobs/uploads/`, { method: 'POST' })).headers.get('location')!;
    proxy.rules.push({ name: 'reset', match: (r) => r.method === 'PATCH', times: 1, action: { resetAfterBytes: 1000 } });
    let first: Response;
    try {
      first = await fetch(`${base}${loc}`, { method: 'PATCH', body: new Uint8Array(data) });
    } finally {
      proxy.rules.length = 0;
    }
    expect(first.status).toBeGreaterThanOrEqual(500);
    const again = await fetch(`${base}${loc}`, { method: 'PATCH', body: new Uint8Array(data) });
    expect(again.status).toBe(202);
    const put = await fetch(`${base}${again.headers.get('location')}?digest=${sha(data)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect((await fetch(`${reg.url}/v2/f/retry/blobs/${sha(data)}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('a blob body cut off upstream never arrives complete', async () => {
    proxy.rules.push({ name: 'cut', match: (r) => r.method === 'GET' && r.path.includes('/blobs/'), times: 1, action: { cutResponseAfterBytes: 1 << 20 } });
    let got = 0;
    let failed = false;
    try {
      const res = await fetch(`${base}/v2/f/app/blobs/${sha(blob)}`);
      for await (const c of res.body!) got += (c as Uint8Array).length;
    } catch {
      failed = true;
    } finally {
      proxy.rules.length = 0;
    }
    expect(failed || got < blob.length).toBe(true);
    expect(got).toBeLessThan(blob.length);
    const again = Buffer.from(await (await fetch(`${base}/v2/f/app/blobs/${sha(blob)}`)).arrayBuffer());
    expect(sha(again)).toBe(sha(blob));
  });
});

// The whole-blob PUT is relayed as it arrives, its last chunk held back until the digest checks out
// (src/store/registry/source.ts holdbackVerified): the upstream must never get a body it could commit.
describe('a lying or vanishing client', () => {
  const startUpload = async (repo: string) => {
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    expect(res.status).toBe(202);
    return res.headers.get('location')!;
  };
  const uploadRequests = (method: string) => proxy.log.filter((r) => r.method === method && r.path.includes('/blobs/uploads/'));
  const upstreamHas = async (repo: string, d: string) => (await fetch(`${reg.url}/v2/${repo}/blobs/${d}`, { method: 'HEAD' })).status === 200;

  it('a PUT whose bytes do not match its digest is refused, never completes upstream, and ends the session there', async () => {
    proxy.reset();
    const actual = Buffer.alloc(2 << 20, 'y');
    const claimed = sha(Buffer.alloc(2 << 20, 'z'));
    const loc = await startUpload('f/lie');
    const res = await fetch(`${base}${loc}?digest=${claimed}`, { method: 'PUT', body: new Uint8Array(actual) });
    expect(res.status).toBe(400);
    expect((await res.json()).errors[0].code).toBe('DIGEST_INVALID');
    // The upstream's PUT was never answered: it never had the whole body (with it, distribution says 400 or 201).
    expect(uploadRequests('PUT').map((r) => r.status)).toEqual([undefined]);
    expect(uploadRequests('DELETE').length).toBeGreaterThan(0);
    expect(await upstreamHas('f/lie', claimed)).toBe(false);
    expect(await upstreamHas('f/lie', sha(actual))).toBe(false);
  });

  it('a client gone mid-body leaves nothing committed upstream, and the gateway serves on', async () => {
    proxy.reset();
    const data = Buffer.alloc(4 << 20, 'w');
    const loc = await startUpload('f/gone');
    const { hostname, port } = new URL(base);
    const sock = connect(Number(port), hostname);
    await once(sock, 'connect');
    sock.write(`PUT ${loc}?digest=${sha(data)} HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-length: ${data.length}\r\n\r\n`);
    sock.write(data.subarray(0, 1 << 20));
    // The first MiB is on its way upstream before the client vanishes.
    for (let i = 0; i < 200 && uploadRequests('PUT').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    sock.destroy();
    for (let i = 0; i < 400 && uploadRequests('DELETE').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(uploadRequests('DELETE').length).toBeGreaterThan(0);
    expect(uploadRequests('PUT').some((r) => r.status === 201)).toBe(false);
    expect(await upstreamHas('f/gone', sha(data))).toBe(false);
    expect((await fetch(`${base}/v2/f/app/blobs/${sha(blob)}`, { method: 'HEAD' })).status).toBe(200);
  });
});
