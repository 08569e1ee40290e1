// A hostile client against the gateway in front of the embedded store: what
// the distribution API must refuse before anything is stored, whatever the
// upstream would have accepted on its own.
import { createHash } from 'node:crypto';
import { readdirSync, utimesSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway/server.js';
import { LocalUpstream } from '../../src/gateway/upstream/local.js';
import type { UploadState } from '../../src/gateway/upstream/types.js';
import type { Logger } from '../../src/server/log.js';
import { tempDir } from '../tmp.js';
import { distAnswer, type DistAnswer } from './dist-answer.js';

const log: Logger = { debug: () => {}, info: () => {}, error: () => {} };
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let gw: Gateway;
let base: string;
let root: string;

beforeAll(async () => {
  root = tempDir('bkcache-gw-hostile-');
  gw = new Gateway({ listen: 'tcp://127.0.0.1:0', upstream: 'local', imageManifestOnly: false }, { auth: { verify: { audience: 'bkcache' } }, backend: {}, root, log, allowUnauthenticatedTcp: false });
  base = `http://${(await gw.start()).slice('tcp://'.length)}`;
});
afterAll(async () => {
  await gw?.close();
});

async function req(p: string, init: RequestInit = {}): Promise<DistAnswer> {
  return distAnswer(await fetch(base + p, init));
}

async function pushBlob(repo: string, data: Buffer | string): Promise<string> {
  const d = sha(data);
  const r = await req(`/v2/${repo}/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(Buffer.from(data)) });
  expect(r.status).toBe(201);
  return d;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const image = (config: string, layers: string[], size = 1) =>
  json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size }, layers: layers.map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d, size })) });
const put = (repo: string, ref: string, body: Buffer, ct = OCI_MANIFEST) => req(`/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(body), headers: { 'content-type': ct } });

describe('manifests naming what the repository lacks', () => {
  it('an image manifest with a missing config or layer: MANIFEST_BLOB_UNKNOWN, by tag and by digest, and nothing readable afterwards', async () => {
    const cfg = await pushBlob('mbu/app', 'c');
    const doc = image(cfg, [sha('no such layer')]);
    expect(await put('mbu/app', 'v1', doc)).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect(await put('mbu/app', sha(doc), doc)).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect(await req(`/v2/mbu/app/manifests/${sha(doc)}`)).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(await req('/v2/mbu/app/manifests/v1')).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
    // A blob of the right digest but another size is not the blob the manifest names.
    const layer = await pushBlob('mbu/app', 'L');
    expect(await put('mbu/app', 'v1', image(cfg, [layer], 99))).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect((await put('mbu/app', 'v1', image(cfg, [layer]))).status).toBe(201);
  });

  it('an index naming a manifest the repository lacks: MANIFEST_BLOB_UNKNOWN, never stored', async () => {
    const cfg = await pushBlob('mbu/idx', 'c');
    const child = image(cfg, []);
    const idx = json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha(child), size: child.length }] });
    expect(await put('mbu/idx', 'multi', idx, OCI_INDEX)).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect(await put('mbu/idx', sha(idx), idx, OCI_INDEX)).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    expect(await req(`/v2/mbu/idx/manifests/${sha(idx)}`)).toMatchObject({ status: 404 });
    expect((await put('mbu/idx', sha(child), child)).status).toBe(201);
    expect((await put('mbu/idx', 'multi', idx, OCI_INDEX)).status).toBe(201);
  });
});

describe('manifest bodies that lie', () => {
  it('invalid JSON, or a Content-Type the body contradicts: MANIFEST_INVALID, never stored', async () => {
    const cfg = await pushBlob('lie/app', 'c');
    const doc = image(cfg, []);
    const notJson = Buffer.from('{"schemaVersion": 2, "config": ');
    for (const ref of ['t', sha(notJson)]) expect(await put('lie/app', ref, notJson)).toMatchObject({ status: 400, code: 'MANIFEST_INVALID' });
    expect(await req(`/v2/lie/app/manifests/${sha(notJson)}`)).toMatchObject({ status: 404 });
    // The body says OCI image manifest; the header says index, or Docker's manifest.
    for (const ct of [OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json']) {
      expect(await put('lie/app', 't', doc, ct)).toMatchObject({ status: 400, code: 'MANIFEST_INVALID' });
      expect(await put('lie/app', sha(doc), doc, ct)).toMatchObject({ status: 400, code: 'MANIFEST_INVALID' });
    }
    expect(await req(`/v2/lie/app/manifests/${sha(doc)}`)).toMatchObject({ status: 404 });
    const ok = await put('lie/app', 't', doc, `${OCI_MANIFEST}; charset=utf-8`);
    expect(ok.status).toBe(201);
    expect((await req('/v2/lie/app/manifests/t')).headers.get('content-type')).toBe(OCI_MANIFEST);
  });
});

/** Sends a request head and part of its body, then drops the connection: a client gone mid-upload. */
async function abandon(p: string, method: string, declared: number, sent: Buffer): Promise<void> {
  const u = new URL(base);
  await new Promise<void>((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname, () => {
      sock.write(`${method} ${p} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: ${declared}\r\n\r\n`);
      sock.write(sent, () => setTimeout(() => (sock.destroy(), resolve()), 100));
    });
    sock.on('error', reject);
  });
}

const ingestFiles = () => readdirSync(path.join(root, '.gateway-uploads'));

describe('upload sessions nobody can finish', () => {
  it('a monolithic POST whose client goes away mid-body leaves no session behind', async () => {
    await pushBlob('gone/app', 'first'); // the ingest directory exists
    const before = ingestFiles();
    await abandon(`/v2/gone/app/blobs/uploads/?digest=${sha('x'.repeat(1000))}`, 'POST', 1000, Buffer.from('x'.repeat(10)));
    // The gateway notices the abort on its own time: wait for the answer of a later request to come after it.
    await expect.poll(async () => ingestFiles().filter((f) => !before.includes(f)), { timeout: 5000 }).toEqual([]);
    expect((await req('/v2/')).status).toBe(200);
  });

  it('the embedded store purges ingest files whose every location has expired, and only those', async () => {
    const dir = tempDir('bkcache-gw-purge-');
    const up = new LocalUpstream(dir, 0);
    const file = (st: UploadState) => path.join(dir, '.gateway-uploads', st.kind === 'local' ? st.id : '');
    const old = await up.startUpload('r');
    const recent = await up.startUpload('r');
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000);
    utimesSync(file(old), hoursAgo(26), hoursAgo(26));
    utimesSync(file(recent), hoursAgo(23), hoursAgo(23));
    const fresh = await up.startUpload('r');
    expect(readdirSync(path.join(dir, '.gateway-uploads')).sort()).toEqual([recent, fresh].map((s) => path.basename(file(s))).sort());
    // A status answer hands out a new location, so it keeps the session alive.
    await up.uploadStatus('r', recent);
    utimesSync(file(fresh), hoursAgo(30), hoursAgo(30));
    await up.startUpload('r');
    expect(readdirSync(path.join(dir, '.gateway-uploads'))).toContain(path.basename(file(recent)));
    expect(readdirSync(path.join(dir, '.gateway-uploads'))).not.toContain(path.basename(file(fresh)));
  });
});

describe('pagination with hostile n and last', () => {
  it('a bad n is a 400 (not 405: the method is fine), a huge n the largest page, repeated n the first', async () => {
    const cfg = await pushBlob('pg/app', 'c');
    const doc = image(cfg, []);
    for (const t of ['a', 'b']) expect((await put('pg/app', t, doc)).status).toBe(201);
    for (const q of ['n=-1', 'n=abc', 'n=1.5', 'n=', 'n=%2B1']) {
      for (const p of ['/v2/pg/app/tags/list', '/v2/_catalog']) expect(await req(`${p}?${q}`)).toMatchObject({ status: 400, code: 'UNSUPPORTED' });
    }
    const huge = await req('/v2/pg/app/tags/list?n=99999999999999999999');
    expect([huge.status, JSON.parse(huge.body.toString()).tags]).toEqual([200, ['a', 'b']]);
    expect(JSON.parse((await req('/v2/_catalog?n=100000000000')).body.toString()).repositories).toContain('pg/app');
    expect(JSON.parse((await req('/v2/pg/app/tags/list?n=1&n=-1')).body.toString()).tags).toEqual(['a']);
    expect(JSON.parse((await req('/v2/pg/app/tags/list?n=0')).body.toString()).tags).toEqual([]);
    expect(JSON.parse((await req(`/v2/pg/app/tags/list?last=${'z'.repeat(200)}`)).body.toString()).tags).toEqual([]);
  });
});

describe('repository names that are entries of another layout (embedded store)', () => {
  it('blobs, index.json and oci-layout components are NAME_INVALID, and nothing is written inside the outer layout', async () => {
    const cfg = await pushBlob('nest/app', 'c');
    const doc = image(cfg, []);
    expect((await put('nest/app', 't', doc)).status).toBe(201);
    const blobDir = path.join(root, 'nest/app/blobs');
    const before = readdirSync(blobDir, { recursive: true }).sort();
    for (const repo of ['nest/app/blobs', 'nest/app/blobs/sha256', `nest/app/blobs/sha256/${cfg.slice(7)}`, 'nest/app/index.json', 'nest/app/oci-layout', 'blobs/x']) {
      expect(await req(`/v2/${repo}/blobs/uploads/?digest=${cfg}`, { method: 'POST', body: new Uint8Array(Buffer.from('c')) })).toMatchObject({ status: 400, code: 'NAME_INVALID' });
      expect(await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' })).toMatchObject({ status: 400, code: 'NAME_INVALID' });
      expect(await put(repo, 't', doc)).toMatchObject({ status: 400, code: 'NAME_INVALID' });
      for (const p of ['tags/list', 'manifests/t', `blobs/${cfg}`]) expect(await req(`/v2/${repo}/${p}`)).toMatchObject({ status: 400, code: 'NAME_INVALID' });
    }
    // As a mount's `from`, such a name holds no blob: an ordinary upload starts, as for any blob found nowhere.
    expect((await req(`/v2/nest/other/blobs/uploads/?mount=${cfg}&from=nest/app/blobs`, { method: 'POST' })).status).toBe(202);
    expect(readdirSync(blobDir, { recursive: true }).sort()).toEqual(before);
    expect((await req('/v2/nest/app/manifests/t')).status).toBe(200);
  });
});

/**
 * Sends a request head, then body bytes until the server answers and closes, or `cap` bytes went.
 * Returns the answer's status line and error code, and whether the server closed the connection.
 */
async function flood(head: string, chunked: boolean, cap: number): Promise<{ answer: string; code?: string; closed: boolean; sent: number }> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let got = '';
    let sent = 0;
    let closed = false;
    const finish = () => resolve({ answer: got.split('\r\n')[0]!, code: /"code":"(\w+)"/.exec(got)?.[1], closed, sent });
    sock.on('data', (d) => (got += d.toString()));
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      finish();
    });
    const chunk = Buffer.alloc(64 << 10, 0x20);
    const framed = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
    const pump = () => {
      while (!closed && sent < cap) {
        sent += chunk.length;
        if (!sock.write(framed)) return void sock.once('drain', pump);
      }
      if (!closed) {
        sock.destroy();
        finish();
      }
    };
    sock.write(`${head}\r\nHost: ${u.host}\r\n${chunked ? 'Transfer-Encoding: chunked' : 'Content-Length: 5000000000'}\r\n\r\n`, pump);
  });
}

describe('bodies past every limit', () => {
  it('a manifest past the limit, declared or chunked, or any body of a refused request: an answer, then the connection closed after at most a few MiB more', async () => {
    for (const [head, chunked, code] of [
      ['PUT /v2/big/app/manifests/t HTTP/1.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json', true, 'SIZE_INVALID'],
      ['PUT /v2/big/app/manifests/t HTTP/1.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json', false, 'SIZE_INVALID'],
      ['PUT /v2/Big/app/manifests/t HTTP/1.1', false, 'NAME_INVALID'],
      ['POST /v2/big/app/blobs/uploads/?digest=sha256:zz HTTP/1.1', true, 'DIGEST_INVALID'],
    ] as const) {
      const r = await flood(head, chunked, 256 << 20);
      expect(r).toMatchObject({ answer: 'HTTP/1.1 400 Bad Request', code, closed: true });
      expect(r.sent).toBeLessThan(64 << 20);
    }
    expect((await req('/v2/')).status).toBe(200);
  });
});

describe('sessions that are over', () => {
  it('a DELETE of a finished or cancelled upload is BLOB_UPLOAD_UNKNOWN, as every other request on it', async () => {
    const data = Buffer.from('finished');
    const start = await req('/v2/over/app/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.get('location')!;
    expect((await req(`${loc}?digest=${sha(data)}`, { method: 'PUT', body: new Uint8Array(data) })).status).toBe(201);
    expect(await req(loc, { method: 'DELETE' })).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    const other = (await req('/v2/over/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
    expect((await req(other, { method: 'DELETE' })).status).toBe(204);
    expect(await req(other, { method: 'DELETE' })).toMatchObject({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
  });
});

describe('blobs that are not manifests (embedded store)', () => {
  it('a JSON blob (image config, cache config, {}) is not served as a manifest by digest; a manifest pushed by digest is', async () => {
    for (const body of [
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: [] } }),
      JSON.stringify({ layers: [{ blob: sha('x'), parent: -1 }], records: [] }),
      '{}',
      '{"manifests":[]}',
    ]) {
      const d = await pushBlob('notman/app', body);
      expect(await req(`/v2/notman/app/manifests/${d}`)).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
      expect((await req(`/v2/notman/app/blobs/${d}`)).status).toBe(200);
    }
    const doc = image(await pushBlob('notman/app', 'c'), []);
    expect((await put('notman/app', sha(doc), doc)).status).toBe(201);
    const got = await req(`/v2/notman/app/manifests/${sha(doc)}`);
    expect([got.status, got.headers.get('content-type'), got.body.equals(doc)]).toEqual([200, OCI_MANIFEST, true]);
  });
});

describe('malformed references', () => {
  it('a manifest reference that is a malformed digest is DIGEST_INVALID, on every method, as a blob digest is', async () => {
    for (const d of ['sha256:' + 'a'.repeat(63), 'sha256:' + 'a'.repeat(65), 'sha256:' + 'A'.repeat(64), 'md5:' + 'a'.repeat(32), 'sha512:' + 'a'.repeat(64)]) {
      for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) {
        const r = await req(`/v2/ref/app/manifests/${d}`, { method, ...(method === 'PUT' ? { body: '{}' } : {}) });
        expect([d, method, r.status]).toEqual([d, method, 400]);
        if (method !== 'HEAD') expect(r.code).toBe('DIGEST_INVALID');
      }
      expect(await req(`/v2/ref/app/blobs/${d}`)).toMatchObject({ status: 400, code: 'DIGEST_INVALID' });
    }
    // A tag past 128 characters is no digest: still a bad reference of the name's route.
    expect(await req(`/v2/ref/app/manifests/${'t'.repeat(129)}`)).toMatchObject({ status: 400, code: 'NAME_INVALID' });
  });
});
