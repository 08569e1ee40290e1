// verify against a registry whose HEAD answers describe another blob than
// the one asked for: a 200 is a claim, and its Content-Length and
// Docker-Content-Digest are part of it. A blob the registry describes as
// something else is not the blob the cache names (verify: missing, and a
// push uploads it rather than trusting the claim).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, sha, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { startFaultProxy, type FaultProxy } from './harness/fault-proxy.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

let reg: StartedRegistry;
let proxy: FaultProxy;

beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
});
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
});

describe('verify against HEAD answers that describe another blob', () => {
  it('a Docker-Content-Digest or a Content-Length other than the blob asked for: reported missing, exit 5', async () => {
    const repo = 'lies/head';
    const c = chainGraph(3, { prefix: 'lies-head' });
    await copyCache([parseCacheSpec(await writeLocal(c.graph, c.blobs))], parseCacheSpec(`type=registry,ref=${reg.host}/${repo}:latest,registry.insecure=true`));
    const [a, b] = [c.nodes[1]!.result!.layers[1]!.digest, c.nodes[2]!.result!.layers[2]!.digest];
    proxy.reset();
    proxy.rules.push(
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
    const r = await runCli(['verify', '--format', 'json', '--import-cache', `type=registry,ref=${proxy.host}/${repo}:latest,registry.insecure=true`]);
    expect(proxy.log.filter((x) => x.fault).length).toBe(2);
    expect(r.code, r.stderr).toBe(5);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, missing: [a, b].sort(), corrupt: [], brokenRecords: 2 });
  });
});
