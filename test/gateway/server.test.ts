// The gateway in-process, in front of the embedded store: the protocol edges
// and hostile inputs of the distribution API, answered with distribution
// errors, nothing half-stored, the server still serving.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway/server.js';
import type { Logger } from '../../src/server/log.js';
import { tempDir } from '../tmp.js';
import { distAnswer, type DistAnswer } from './dist-answer.js';

const lines: Record<string, unknown>[] = [];
const log: Logger = { debug: () => {}, info: (msg, f) => lines.push({ msg, ...f }), error: (msg, f) => lines.push({ msg, ...f }) };
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const CFG = 'application/vnd.buildkit.cacheconfig.v0';

let root: string;
let gw: Gateway;
let base: string;

function deps(extra: Partial<ConstructorParameters<typeof Gateway>[1]> = {}) {
  return { auth: { verify: { audience: 'bkcache' } }, backend: {}, root, log, allowUnauthenticatedTcp: false, ...extra };
}

beforeAll(async () => {
  root = tempDir('bkcache-gw-unit-');
  gw = new Gateway({ listen: 'tcp://127.0.0.1:0', upstream: 'local', imageManifestOnly: false }, deps());
  base = `http://${(await gw.start()).slice('tcp://'.length)}`;
});
afterAll(async () => {
  await gw?.close();
});

async function req(p: string, init: RequestInit = {}): Promise<DistAnswer> {
  return distAnswer(await fetch(base + p, init));
}

async function pushBlob(repo: string, data: Buffer): Promise<string> {
  const d = sha(data);
  const r = await req(`/v2/${repo}/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
  expect(r.status).toBe(201);
  return d;
}

describe('serving', () => {
  it('refuses to listen beyond loopback without auth unless told', async () => {
    const g = new Gateway({ listen: 'tcp://0.0.0.0:0', upstream: 'local', imageManifestOnly: false }, deps());
    await expect(g.start()).rejects.toThrow(/without auth/);
    await g.close();
    const insecure = new Gateway({ listen: 'tcp://0.0.0.0:0', upstream: 'local', imageManifestOnly: false }, deps({ allowUnauthenticatedTcp: true }));
    expect(await insecure.start()).toMatch(/^tcp:\/\/0\.0\.0\.0:\d+$/);
    await insecure.close();
  });

  it('answers the ping, unknown routes and bad names', async () => {
    expect((await req('/v2/')).status).toBe(200);
    expect((await req('/v2/')).headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect((await req('/nothing')).status).toBe(404);
    expect(await req('/v2/Bad/manifests/x')).toMatchObject({ status: 400, code: 'NAME_INVALID' });
    expect(await req(`/v2/a/blobs/sha256:zz`)).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    expect(await req('/v2/a/tags/list', { method: 'DELETE' })).toMatchObject({ status: 405, code: 'UNSUPPORTED' });
  });
});

describe('uploads', () => {
  it('chunked: PATCHes in order, status, a wrong range refused', async () => {
    const data = Buffer.from('0123456789abcdefghij'.repeat(100));
    const start = await req('/v2/up/chunked/blobs/uploads/', { method: 'POST' });
    expect(start.status).toBe(202);
    expect(start.headers.get('range')).toBe('0-0');
    let loc = start.headers.get('location')!;
    const p1 = await req(loc, { method: 'PATCH', body: data.subarray(0, 700), headers: { 'content-range': '0-699' } });
    expect(p1.status).toBe(202);
    expect(p1.headers.get('range')).toBe('0-699');
    loc = p1.headers.get('location')!;
    // Replaying the old location, or a chunk that does not start at the offset: 416.
    expect(await req(start.headers.get('location')!, { method: 'PATCH', body: data.subarray(0, 10), headers: { 'content-range': '0-9' } })).toMatchObject({ status: 416 });
    expect(await req(loc, { method: 'PATCH', body: data.subarray(0, 10), headers: { 'content-range': '5-14' } })).toMatchObject({ status: 416, code: 'RANGE_INVALID' });
    const st = await req(loc);
    expect(st.status).toBe(204);
    expect(st.headers.get('range')).toBe('0-699');
    // Streamed without Content-Range (and chunked transfer encoding).
    const p2 = await req(loc, { method: 'PATCH', body: data.subarray(700) });
    expect(p2.status).toBe(202);
    loc = p2.headers.get('location')!;
    const done = await req(`${loc}?digest=${sha(data)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    expect(done.headers.get('docker-content-digest')).toBe(sha(data));
    expect((await req(`/v2/up/chunked/blobs/${sha(data)}`)).body.equals(data)).toBe(true);
  });

  it('a commit with the wrong digest stores nothing and ends the session, as distribution does', async () => {
    const start = await req('/v2/up/wrong/blobs/uploads/', { method: 'POST' });
    const p = await req(start.headers.get('location')!, { method: 'PATCH', body: 'some bytes' });
    const loc = p.headers.get('location')!;
    const wrong = sha('something else');
    expect(await req(`${loc}?digest=${wrong}`, { method: 'PUT' })).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    expect((await req(`/v2/up/wrong/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
    expect((await req(`/v2/up/wrong/blobs/${sha('some bytes')}`, { method: 'HEAD' })).status).toBe(404);
    expect(await req(`${loc}?digest=${sha('some bytes')}`, { method: 'PUT' })).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('monolithic PUT with a body that does not match its digest stores nothing', async () => {
    const start = await req('/v2/up/mono/blobs/uploads/', { method: 'POST' });
    const claimed = sha('claimed');
    const r = await req(`${start.headers.get('location')}?digest=${claimed}`, { method: 'PUT', body: 'actual content' });
    expect(r).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    expect((await req(`/v2/up/mono/blobs/${claimed}`, { method: 'HEAD' })).status).toBe(404);
    expect((await req(`/v2/up/mono/blobs/${sha('actual content')}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('cancel ends the session; forged or foreign locations are unknown uploads', async () => {
    const start = await req('/v2/up/cancel/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.get('location')!;
    expect((await req(loc, { method: 'DELETE' })).status).toBe(204);
    expect(await req(loc)).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await req('/v2/up/cancel/blobs/uploads/forged', { method: 'PATCH', body: 'x' })).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    const other = loc.replace('/up/cancel/', '/up/other/');
    expect(await req(other)).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    // No ingest file is left behind by the cancel.
    expect(readdirSync(path.join(root, '.gateway-uploads')).some((f) => loc.includes(f))).toBe(false);
  });

  it('mounts from another repository, which then holds its own copy', async () => {
    const d = await pushBlob('mnt/src', Buffer.from('mount me'));
    const r = await req(`/v2/mnt/dst/blobs/uploads/?mount=${d}&from=mnt/src`, { method: 'POST' });
    expect(r.status).toBe(201);
    expect((await req(`/v2/mnt/dst/blobs/${d}`)).body.toString()).toBe('mount me');
    // Absent in `from`: an ordinary upload starts instead.
    expect((await req(`/v2/mnt/dst/blobs/uploads/?mount=${sha('nowhere')}&from=mnt/src`, { method: 'POST' })).status).toBe(202);
  });
});

describe('blobs', () => {
  it('serves ranges, and 416 outside the blob', async () => {
    const data = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    const d = await pushBlob('rng/app', data);
    const r = await req(`/v2/rng/app/blobs/${d}`, { headers: { range: 'bytes=5-9' } });
    expect(r.status).toBe(206);
    expect(r.body.toString()).toBe('fghij');
    expect(r.headers.get('content-range')).toBe('bytes 5-9/26');
    expect((await req(`/v2/rng/app/blobs/${d}`, { headers: { range: 'bytes=20-' } })).body.toString()).toBe('uvwxyz');
    expect((await req(`/v2/rng/app/blobs/${d}`, { headers: { range: 'bytes=99-' } })).status).toBe(416);
    // A range it does not understand is ignored: the whole blob.
    expect((await req(`/v2/rng/app/blobs/${d}`, { headers: { range: 'bytes=1-2,4-5' } })).status).toBe(200);
    const head = await req(`/v2/rng/app/blobs/${d}`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), head.body.length]).toEqual([200, '26', 0]);
    // Another repository does not hold it.
    expect(await req(`/v2/rng/other/blobs/${d}`)).toMatchObject({ status: 404, code: 'BLOB_UNKNOWN' });
  });
});

describe('manifests', () => {
  it('refuses bytes that do not match the digest, oversized bodies, and caches naming missing blobs', async () => {
    const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: CFG, digest: sha('cfg'), size: 3 }, layers: [] }));
    const ct = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    expect(await req(`/v2/man/app/manifests/${sha('other')}`, { method: 'PUT', body: doc, headers: ct })).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    expect(await req('/v2/man/app/manifests/t', { method: 'PUT', body: doc, headers: ct })).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect(await req('/v2/man/app/manifests/big', { method: 'PUT', body: Buffer.alloc(5 << 20, 32), headers: ct })).toMatchObject({ status: 400, code: 'SIZE_INVALID' });
    await pushBlob('man/app', Buffer.from('cfg'));
    const ok = await req('/v2/man/app/manifests/t', { method: 'PUT', body: doc, headers: ct });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('docker-content-digest')).toBe(sha(doc));
    const head = await req('/v2/man/app/manifests/t', { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type'), head.headers.get('docker-content-digest'), head.headers.get('content-length'), head.body.length]).toEqual([
      200, 'application/vnd.oci.image.manifest.v1+json', sha(doc), String(doc.length), 0,
    ]);
    expect((await req(`/v2/man/app/manifests/${sha(doc)}`)).body.equals(doc)).toBe(true);
    expect(await req('/v2/man/app/manifests/missing')).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
    // Deletes by tag are not manifest deletes (local-upstream.test.ts covers deletes by digest).
    expect(await req(`/v2/man/app/manifests/t`, { method: 'DELETE' })).toMatchObject({ status: 405, code: 'UNSUPPORTED' });
  });

  it('lists tags with pagination, and the catalog', async () => {
    await pushBlob('pag/app', Buffer.from('cfg'));
    const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: CFG, digest: sha('cfg'), size: 3 }, layers: [] }));
    for (const t of ['c', 'a', 'b']) expect((await req(`/v2/pag/app/manifests/${t}`, { method: 'PUT', body: doc, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status).toBe(201);
    const p1 = await req('/v2/pag/app/tags/list?n=2');
    expect(JSON.parse(p1.body.toString())).toEqual({ name: 'pag/app', tags: ['a', 'b'] });
    expect(p1.headers.get('link')).toBe('</v2/pag/app/tags/list?n=2&last=b>; rel="next"');
    expect(JSON.parse((await req('/v2/pag/app/tags/list?n=2&last=b')).body.toString()).tags).toEqual(['c']);
    expect(await req('/v2/pag/none/tags/list')).toMatchObject({ status: 404, code: 'NAME_UNKNOWN' });
    expect(JSON.parse((await req('/v2/_catalog')).body.toString()).repositories).toContain('pag/app');
    expect(existsSync(path.join(root, 'pag/app/index.json'))).toBe(true);
  });
});

describe('operations', () => {
  it('logs a line per request and counts requests and bytes', () => {
    const l = lines.filter((x) => x.msg === 'gateway call');
    expect(l.some((x) => x.method === 'PATCH' && x.status === 202 && (x.bytes as number) >= 700)).toBe(true);
    const text = gw.ctx.metrics.render();
    expect(text).toMatch(/bkcache_gateway_requests_total\{route="upload",method="PATCH",status="202"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_bytes_total\{direction="received"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_cache_manifests_total\{tier="none",result="hit"\} \d+/);
  });
});

describe('listeners', () => {
  it('serves a unix socket, and TLS on tcp', async () => {
    const { Agent, request } = await import('undici');
    const { execFileSync } = await import('node:child_process');
    const dir = tempDir('bkcache-gw-listen-');
    const sock = path.join(dir, 'gw.sock');
    const u = new Gateway({ listen: `unix://${sock}`, upstream: 'local', imageManifestOnly: false }, deps());
    expect(await u.start()).toBe(`unix://${sock}`);
    const viaSock = new Agent({ connect: { socketPath: sock } });
    const r1 = await request('http://localhost/v2/', { dispatcher: viaSock });
    expect(r1.statusCode).toBe(200);
    await r1.body.dump();
    await viaSock.close();
    await u.close();
    expect(existsSync(sock)).toBe(false);

    const cert = path.join(dir, 'c.pem');
    const key = path.join(dir, 'k.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const t = new Gateway({ listen: 'tcp://127.0.0.1:0', upstream: 'local', imageManifestOnly: false, tls: { cert, key } }, deps());
    const addr = (await t.start()).slice('tcp://'.length);
    const tls = new Agent({ connect: { ca: (await import('node:fs')).readFileSync(cert) } });
    const r2 = await request(`https://${addr}/v2/`, { dispatcher: tls });
    expect(r2.statusCode).toBe(200);
    await r2.body.dump();
    await tls.close();
    await t.close();
  });
});
