// Real clients through the gateway, in front of a real docker-registry:
// skopeo both ways (an ordinary image passes through byte for byte), bkcache
// copy both ways, the imageManifestOnly shape as the upstream stores it (read
// straight from the registry with HTTP and skopeo), and a cache manifest
// naming blobs the repository lacks refused before the upstream sees it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BK } from '../test/fixtures.js';
import { tempDir } from '../test/tmp.js';
import { runJson } from './harness/cli.js';
import { insecureHosts, startGateway, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

let reg: StartedRegistry;
let gw: GatewayProcess;
let gwIm: GatewayProcess;

beforeAll(async () => {
  reg = await startRegistry();
  const dir = tempDir('bkcache-gw-clients-');
  writeFileSync(path.join(dir, 'plain.yaml'), insecureHosts(reg.host));
  gw = await startGateway({ upstream: `${reg.host}/gw`, args: ['--config', path.join(dir, 'plain.yaml')] });
  writeFileSync(
    path.join(dir, 'im.yaml'),
    insecureHosts(reg.host) + `gateway:\n  listen: tcp://127.0.0.1:0\n  upstream: ${reg.host}/ecr\n  imageManifestOnly: true\n`,
  );
  gwIm = await startGatewayFromConfig(path.join(dir, 'im.yaml'));
});

afterAll(async () => {
  for (const g of [gw, gwIm]) {
    await g?.d.stop();
    g?.d.cleanup();
  }
  await reg?.stop();
});

async function upstreamManifest(repo: string, tag: string): Promise<{ contentType: string; bytes: Buffer }> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT } });
  expect(res.status).toBe(200);
  return { contentType: res.headers.get('content-type')!, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('skopeo through the gateway', () => {
  it('copies an image in and out unchanged', () => {
    const src = `oci:${path.join(BK, 'inline-image')}`;
    execFileSync('skopeo', ['copy', '--dest-tls-verify=false', src, `docker://${gw.host}/images/app:v1`], { stdio: 'pipe' });
    const fixture = readFileSync(path.join(BK, 'inline-image/blobs/sha256/b18277454654a2197f9f10865112a0b4fbe45494d8563c6f81f1e4d205641f08'));
    const through = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${gw.host}/images/app:v1`]);
    expect(through.equals(fixture)).toBe(true);
    // The upstream holds the same bytes, under the prefix.
    const direct = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/gw/images/app:v1`]);
    expect(direct.equals(fixture)).toBe(true);
    const out = tempDir('bkcache-gw-skopeo-');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${gw.host}/images/app:v1`, `oci:${out}:back`], { stdio: 'pipe' });
    // An oci: layout holds OCI manifests, so skopeo converts the Docker manifest and config; the layers are the same blobs.
    const idx = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8'));
    const back = JSON.parse(readFileSync(path.join(out, 'blobs', ...idx.manifests[0].digest.split(':')), 'utf8'));
    const orig = JSON.parse(fixture.toString('utf8'));
    expect(back.layers.map((l: { digest: string }) => l.digest)).toEqual(orig.layers.map((l: { digest: string }) => l.digest));
  });

  it('copies an image-manifest cache in and out', () => {
    const src = `oci:${path.join(BK, 'registry-imagemanifest-max')}`;
    execFileSync('skopeo', ['copy', '--dest-tls-verify=false', src, `docker://${gw.host}/cache/skopeo:im`], { stdio: 'pipe' });
    const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${gw.host}/cache/skopeo:im`]);
    expect(sha(raw)).toBe('sha256:fd9594f014920522f0287670381ca962943250d50dc096f2c8aab4e030fb4e66');
  });
});

describe('bkcache copy through the gateway', () => {
  it('exports BuildKit bytes to the gateway and imports them back', async () => {
    const out = await runJson<{ manifest: { digest: string } }>([
      'copy',
      '--import-cache', `type=local,src=${path.join(BK, 'registry-index-oci-max')}`,
      '--export-cache', `type=registry,ref=${gw.host}/cache/app:index,registry.insecure=true,image-manifest=false`,
      '--format', 'json',
    ]);
    expect(out.manifest.digest).toBe('sha256:b3acef7c963ab2f31316d646f59b89734bec8721e8ae9a3cab014ebc0bcd10bb');
    const m = await upstreamManifest('gw/cache/app', 'index');
    expect(sha(m.bytes)).toBe(out.manifest.digest);

    const dest = tempDir('bkcache-gw-copy-');
    const back = await runJson<{ manifest: { digest: string } }>([
      'copy',
      '--import-cache', `type=registry,ref=${gw.host}/cache/app:index,registry.insecure=true`,
      '--export-cache', `type=local,dest=${dest},image-manifest=false`,
      '--format', 'json',
    ]);
    expect(back.manifest.digest).toBe(out.manifest.digest);
    const summary = await runJson<{ kind: string; records: number; layers: number }>(['inspect', '--import-cache', `type=local,src=${dest}`, '--format', 'json']);
    expect(summary).toMatchObject({ kind: 'index', records: 11, layers: 8 });

    // Between two repositories of the gateway, blobs are mounted, not sent again.
    const moved = await runJson<{ manifest: { digest: string }; stats: { mounted: number; uploaded: number } }>([
      'copy',
      '--import-cache', `type=registry,ref=${gw.host}/cache/app:index,registry.insecure=true`,
      '--export-cache', `type=registry,ref=${gw.host}/cache/app2:index,registry.insecure=true,image-manifest=false`,
      '--format', 'json',
    ]);
    expect(moved.manifest.digest).toBe(out.manifest.digest);
    expect(moved.stats.mounted).toBeGreaterThan(0);
    expect(moved.stats.uploaded).toBe(0);
    expect((await fetch(`${reg.url}/v2/gw/cache/app2/blobs/${'sha256:02404e21dfeca1f6172ff8becf0fe71c80ed565c8fa47772e9ec5fd9adea2dd9'}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('deletes', () => {
  it('deletes a manifest and a blob where the upstream allows it', async () => {
    const blob = Buffer.from('deleted through the gateway');
    const d = sha(blob);
    expect((await fetch(`${gw.url}/v2/del/app/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(blob) })).status).toBe(201);
    const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d, size: blob.length }, layers: [] }));
    const put = await fetch(`${gw.url}/v2/del/app/manifests/v1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: new Uint8Array(doc) });
    expect(put.status).toBe(201);
    expect((await fetch(`${gw.url}/v2/del/app/manifests/v1`, { method: 'DELETE' })).status).toBe(405);
    expect((await fetch(`${gw.url}/v2/del/app/manifests/${sha(doc)}`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(`${gw.url}/v2/del/app/manifests/${sha(doc)}`, { headers: { accept: ACCEPT } })).status).toBe(404);
    expect((await fetch(`${gw.url}/v2/del/app/blobs/${d}`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(`${reg.url}/v2/gw/del/app/blobs/${d}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${gw.url}/v2/del/app/blobs/${d}`, { method: 'DELETE' })).status).toBe(404);
  });
});

describe('deletes of what something still names (registry upstream)', () => {
  it('a blob a tagged manifest names, or a manifest a tagged index names, is refused with DENIED and stays', async () => {
    const MT = 'application/vnd.oci.image.manifest.v1+json';
    const blob = Buffer.from('still named through the gateway');
    const d = sha(blob);
    expect((await fetch(`${gw.url}/v2/named/app/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(blob) })).status).toBe(201);
    const doc = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d, size: blob.length }, layers: [] }));
    expect((await fetch(`${gw.url}/v2/named/app/manifests/${sha(doc)}`, { method: 'PUT', headers: { 'content-type': MT }, body: new Uint8Array(doc) })).status).toBe(201);
    const IT = 'application/vnd.oci.image.index.v1+json';
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: IT, manifests: [{ mediaType: MT, digest: sha(doc), size: doc.length }] }));
    expect((await fetch(`${gw.url}/v2/named/app/manifests/multi`, { method: 'PUT', headers: { 'content-type': IT }, body: new Uint8Array(idx) })).status).toBe(201);
    for (const p of [`blobs/${d}`, `manifests/${sha(doc)}`]) {
      const r = await fetch(`${gw.url}/v2/named/app/${p}`, { method: 'DELETE' });
      expect([p, r.status, (await r.json()).errors[0].code]).toEqual([p, 403, 'DENIED']);
    }
    expect((await fetch(`${reg.url}/v2/gw/named/app/blobs/${d}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${reg.url}/v2/gw/named/app/manifests/${sha(doc)}`, { method: 'HEAD', headers: { accept: MT } })).status).toBe(200);
    // Once the index is gone, nothing names the manifest; once the manifest is gone, nothing names the blob.
    for (const p of [`manifests/${sha(idx)}`, `manifests/${sha(doc)}`, `blobs/${d}`]) expect([p, (await fetch(`${gw.url}/v2/named/app/${p}`, { method: 'DELETE' })).status]).toEqual([p, 202]);
  });
});

describe('imageManifestOnly', () => {
  it('stores a pushed cache index as an OCI image manifest, answering with the digest of the bytes sent', async () => {
    const out = await runJson<{ manifest: { digest: string } }>([
      'copy',
      '--import-cache', `type=local,src=${path.join(BK, 'registry-index-oci-max')}`,
      '--export-cache', `type=registry,ref=${gwIm.host}/cache/app:main,registry.insecure=true,image-manifest=false`,
      '--format', 'json',
    ]);
    // The client's own digest: the index it sent.
    expect(out.manifest.digest).toBe('sha256:b3acef7c963ab2f31316d646f59b89734bec8721e8ae9a3cab014ebc0bcd10bb');
    const index = JSON.parse(readFileSync(path.join(BK, 'registry-index-oci-max/blobs/sha256/b3acef7c963ab2f31316d646f59b89734bec8721e8ae9a3cab014ebc0bcd10bb'), 'utf8'));
    for (const raw of [(await upstreamManifest('ecr/cache/app', 'main')).bytes, execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/ecr/cache/app:main`])]) {
      const doc = JSON.parse(raw.toString('utf8'));
      expect(doc.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(doc.config).toEqual(index.manifests.at(-1));
      expect(doc.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
      expect(doc.layers).toHaveLength(index.manifests.length - 1);
      doc.layers.forEach((l: any, i: number) => {
        expect(l.mediaType).toMatch(/^application\/vnd\.oci\.image\.layer\.v1\.tar/);
        expect({ ...l, mediaType: undefined }).toEqual({ ...index.manifests[i], mediaType: undefined });
      });
    }
    expect((await upstreamManifest('ecr/cache/app', 'main')).contentType).toBe('application/vnd.oci.image.manifest.v1+json');
    // BuildKit imports the stored shape through the gateway.
    const summary = await runJson<{ kind: string; records: number }>(['inspect', '--import-cache', `type=registry,ref=${gwIm.host}/cache/app:main,registry.insecure=true`, '--format', 'json']);
    expect(summary).toMatchObject({ kind: 'image-manifest', records: 11 });
  });

  it('refuses a cache manifest whose blobs the repository lacks, before the upstream sees it', async () => {
    const missing = 'sha256:' + 'ab'.repeat(32);
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: missing, size: 10 },
      layers: [],
    });
    const res = await fetch(`${gw.url}/v2/cache/lacking/manifests/t1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body });
    expect(res.status).toBe(400);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
    const up = await fetch(`${reg.url}/v2/gw/cache/lacking/manifests/t1`, { method: 'HEAD', headers: { accept: ACCEPT } });
    expect(up.status).toBe(404);
  });
});
