// verify against a registry whose HEAD answers describe another blob than
// the one asked for: a 200 is a claim, and its Content-Length and
// Docker-Content-Digest are part of it. A blob the registry describes as
// something else is not the blob the cache names (verify: missing, and a
// push uploads it rather than trusting the claim).
import { describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, sha, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { pushInlineImage } from './harness/inline-image.js';
import { faultyRegistry } from './harness/faulty-registry.js';

const env = faultyRegistry({});

describe('verify against HEAD answers that describe another blob', () => {
  it('a Docker-Content-Digest or a Content-Length other than the blob asked for: reported missing, exit 5', async () => {
    const repo = 'lies/head';
    const c = chainGraph(3, { prefix: 'lies-head' });
    await copyCache([parseCacheSpec(await writeLocal(c.graph, c.blobs))], parseCacheSpec(`type=registry,ref=${env.reg.host}/${repo}:latest,registry.insecure=true`));
    const [a, b] = [c.nodes[1]!.result!.layers[1]!.digest, c.nodes[2]!.result!.layers[2]!.digest];
    env.proxy.reset();
    env.proxy.rules.push(
      {
        name: 'other digest',
        match: (r) => r.method === 'HEAD' && r.path === `/v2/${repo}/blobs/${a}`,
        action: { rewrite: (res) => void (res.headers['docker-content-digest'] = sha('something else')) },
      },
      {
        name: 'other length',
        match: (r) => r.method === 'HEAD' && r.path === `/v2/${repo}/blobs/${b}`,
        action: { rewrite: (res) => void (res.headers['content-length'] = '1') },
      },
    );
    const r = await runCli(['verify', '--format', 'json', '--import-cache', `type=registry,ref=${env.proxy.host}/${repo}:latest,registry.insecure=true`]);
    expect(env.proxy.log.filter((x) => x.fault).length).toBe(2);
    expect(r.code, r.stderr).toBe(5);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, missing: [a, b].sort(), corrupt: [], brokenRecords: 2 });
  });

  it('a platform manifest whose HEAD names another digest: reported corrupt (exit 5), not a failed verify', async () => {
    const repo = 'lies/platforms';
    const img = await pushInlineImage(env.reg.host, `${repo}:image`);
    // A multi-platform inline cache: an index whose one platform is the image.
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...img, platform: { architecture: 'amd64', os: 'linux' } }] });
    const put = await fetch(`${env.reg.url}/v2/${repo}/manifests/multi`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body });
    expect(put.status).toBe(201);
    const spec = `type=registry,ref=${env.proxy.host}/${repo}:multi,registry.insecure=true`;
    env.proxy.reset();
    const ok = await runCli(['verify', '--format', 'json', '--import-cache', spec]);
    expect(ok.code, ok.stderr).toBe(0);
    env.proxy.rules.push({
      name: 'other digest',
      match: (r) => r.method === 'HEAD' && r.path === `/v2/${repo}/manifests/${img.digest}`,
      action: { rewrite: (res) => void (res.headers['docker-content-digest'] = sha('another manifest')) },
    });
    const r = await runCli(['verify', '--format', 'json', '--import-cache', spec]);
    expect(env.proxy.log.some((x) => x.fault === 'other digest')).toBe(true);
    expect(r.code, r.stderr).toBe(5);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, missing: [], corrupt: [img.digest] });
  });
});
