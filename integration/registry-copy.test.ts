// Every fixture pushed to a real distribution registry with `bkcache copy`,
// in both shapes, then checked with plain HTTP GETs and with skopeo, not
// through our own client.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { BK, readmeSummaries } from '../test/fixtures.js';
import { runCli, runJson } from './harness/cli.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';
import { tempDir } from '../test/tmp.js';

const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

const summaries = readmeSummaries();
let reg: StartedRegistry;
const ref = (repo: string, tag: string) => `type=registry,ref=${reg.host}/${repo}:${tag},registry.insecure=true`;

async function getManifest(repo: string, tag: string): Promise<{ contentType: string; bytes: Buffer; doc: any }> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT } });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { contentType: res.headers.get('content-type')!, bytes, doc: JSON.parse(bytes.toString()) };
}

async function expectBlob(repo: string, digest: string): Promise<void> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
  expect(res.status, digest).toBe(200);
  const body = Buffer.from(await res.arrayBuffer());
  expect('sha256:' + createHash('sha256').update(body).digest('hex')).toBe(digest);
}

function skopeoRaw(repo: string, tag: string): Buffer {
  return execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/${repo}:${tag}`]);
}

beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

describe('copy every fixture into a real registry', () => {
  for (const [name, s] of summaries) {
    const repo = `fixtures/${name}`;
    for (const shape of ['image-manifest', 'index'] as const) {
      it(`${name} as ${shape}`, async () => {
        const opts = shape === 'index' ? ',image-manifest=false' : '';
        const out = await runJson<{ manifest: { digest: string } }>([
          'copy',
          '--import-cache',
          `type=local,src=${path.join(BK, name)}`,
          '--export-cache',
          ref(repo, shape) + opts,
          '--format',
          'json',
        ]);
        const m = await getManifest(repo, shape);
        expect(m.contentType).toBe(shape === 'index' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json');
        expect(m.doc.mediaType).toBe(m.contentType);
        expect('sha256:' + createHash('sha256').update(m.bytes).digest('hex')).toBe(out.manifest.digest);
        expect(m.doc.annotations).toBeUndefined();
        expect(m.doc.artifactType).toBeUndefined();
        let config: { digest: string; mediaType: string };
        let layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
        if (shape === 'index') {
          config = m.doc.manifests.at(-1);
          layers = m.doc.manifests.slice(0, -1);
        } else {
          config = m.doc.config;
          layers = m.doc.layers;
        }
        expect(config.mediaType).toBe(CACHE_CONFIG);
        if (s.config) expect(config.digest).toBe(s.config);
        expect(layers.length).toBeGreaterThan(0);
        for (const l of layers) {
          expect(l.mediaType).toMatch(/^application\/vnd\.oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?$/);
          expect(l.annotations?.['containerd.io/uncompressed']).toMatch(/^sha256:[a-f0-9]{64}$/);
          await expectBlob(repo, l.digest);
        }
        await expectBlob(repo, config.digest);
        expect(skopeoRaw(repo, shape).equals(m.bytes)).toBe(true);
      });
    }
  }

  for (const [name, s] of summaries) {
    if (!name.startsWith('registry-')) continue;
    it(`${name} re-exported in its own shape is BuildKit's manifest, byte for byte`, async () => {
      const opts =
        s.mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json'
          ? ',oci-mediatypes=false'
          : s.kind === 'index'
            ? ',image-manifest=false'
            : '';
      await runJson(['copy', '--import-cache', `type=local,src=${path.join(BK, name)}`, '--export-cache', ref(`own/${name}`, 'v1') + opts, '--format', 'json']);
      const m = await getManifest(`own/${name}`, 'v1');
      expect('sha256:' + createHash('sha256').update(m.bytes).digest('hex')).toBe(s.manifest);
      expect(m.contentType).toBe(s.mediaType);
    });
  }
});

describe('registry to registry', () => {
  it('inspects, converts index to image manifest, and mounts between repositories', async () => {
    const src = path.join(BK, 'registry-index-oci-max');
    await runJson(['copy', '--import-cache', `type=local,src=${src}`, '--export-cache', ref('conv/src', 'idx') + ',image-manifest=false', '--format', 'json']);
    expect(await runJson(['inspect', '--import-cache', ref('conv/src', 'idx'), '--format', 'json'])).toEqual(summaries.get('registry-index-oci-max'));
    const res = await runJson<{ manifest: { digest: string }; stats: { mounted: number; uploaded: number } }>([
      'copy',
      '--import-cache',
      ref('conv/src', 'idx'),
      '--export-cache',
      ref('conv/dst', 'ecr'),
      '--format',
      'json',
    ]);
    expect(res.stats).toMatchObject({ mounted: 8, uploaded: 0 });
    // The ECR-compatible shape of this cache is exactly what BuildKit writes with image-manifest=true.
    expect(res.manifest.digest).toBe(summaries.get('registry-imagemanifest-max')!.manifest);
  });

  it('a second export of an unchanged cache uploads no layer bytes', async () => {
    const args = ['copy', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')}`, '--export-cache', ref('again/c', 'x'), '--format', 'json'];
    const first = await runJson<{ stats: { uploaded: number } }>(args);
    const second = await runJson<{ stats: { uploaded: number; uploadedBytes: number; skipped: number } }>(args);
    expect(first.stats.uploaded).toBeGreaterThan(0);
    expect(second.stats).toMatchObject({ uploaded: 0, uploadedBytes: 0 });
    expect(second.stats.skipped).toBe(first.stats.uploaded);
  });

  it('a missing tag is a NOT_FOUND error with exit code 3 (not found)', async () => {
    const r = await runCli(['inspect', '--import-cache', ref('nothing/here', 'nope')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not found.*\[NOT_FOUND\]/);
  });

  it('8 concurrent exports of different caches to one repository lose nothing', async () => {
    const names = [...summaries.keys()];
    const jobs = Array.from({ length: 8 }, (_, i) => ({ name: names[i % names.length]!, tag: `t${i}` }));
    await Promise.all(
      jobs.map((j) =>
        copyCache([parseCacheSpec(`type=local,src=${path.join(BK, j.name)}`)], parseCacheSpec(ref('busy/repo', j.tag)), {}),
      ),
    );
    for (const j of jobs) {
      const got = await runJson<{ records: number }>(['inspect', '--import-cache', ref('busy/repo', j.tag), '--format', 'json']);
      expect(got.records).toBe(summaries.get(j.name)!.records);
      const m = await getManifest('busy/repo', j.tag);
      for (const l of m.doc.layers ?? m.doc.manifests) await expectBlob('busy/repo', l.digest);
    }
  });
});

describe('credentials from a Docker config.json', () => {
  let auth: StartedRegistry;
  beforeAll(async () => {
    auth = await startRegistry({ auth: 'htpasswd' });
  });
  afterAll(async () => {
    await auth?.stop();
  });

  it('copies to an htpasswd registry with DOCKER_CONFIG, and fails typed without it', async () => {
    const dir = tempDir('bkcache-dockercfg-');
    const b64 = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [auth.host]: { auth: b64 } } }));
    const target = `type=registry,ref=${auth.host}/private/cache:v1,registry.insecure=true`;
    const args = ['copy', '--import-cache', `type=local,src=${path.join(BK, 'registry-index-oci-max')}`, '--export-cache', target, '--format', 'json'];
    const ok = await runCli(args, { env: { DOCKER_CONFIG: dir } });
    expect(ok.code, ok.stderr).toBe(0);
    const empty = tempDir('bkcache-dockercfg-');
    const denied = await runCli(['inspect', '--import-cache', target], { env: { DOCKER_CONFIG: empty } });
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/\[UNAUTHENTICATED\]/);
    expect(denied.stderr).not.toContain(auth.password!);
  });
});
