// An index that lists thousands of platform manifests: reading a cache from
// it (verify, and every import) reads a bounded number of them and stops
// with RESOURCE_EXHAUSTED, instead of reading (and holding) every one.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_INLINE_READS } from '../src/cache/import.js';
import { mapLimit } from '../src/cache/transfer.js';
import { runCli } from './harness/cli.js';
import { faultyRegistry } from './harness/faulty-registry.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const env = faultyRegistry({});

async function putIndex(repo: string, ref: string, doc: object): Promise<{ mediaType: string; digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, ...doc }));
  const res = await fetch(`${env.reg.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { 'content-type': INDEX }, body });
  expect(res.status).toBe(201);
  return { mediaType: INDEX, digest: 'sha256:' + createHash('sha256').update(body).digest('hex'), size: body.length };
}

describe('bounded reads of an index with many children', () => {
  it(`verify of an index listing ${MAX_INLINE_READS + 100} nested indexes reads at most ${MAX_INLINE_READS} of them, then fails with one line, exit 1`, async () => {
    const repo = 'bounds/children';
    const n = MAX_INLINE_READS + 100;
    const children = new Array<{ mediaType: string; digest: string; size: number }>(n);
    await mapLimit([...Array(n).keys()], 8, async (i) => {
      const doc = { manifests: [], annotations: { n: String(i) } };
      const digest = 'sha256:' + createHash('sha256').update(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, ...doc })).digest('hex');
      children[i] = await putIndex(repo, digest, doc);
    });
    await putIndex(repo, 'wide', { manifests: children });
    env.proxy.reset();
    const r = await runCli(['verify', '--import-cache', `type=registry,ref=${env.proxy.host}/${repo}:wide,registry.insecure=true`]);
    const gets = env.proxy.log.filter((x) => x.method === 'GET' && x.path.startsWith(`/v2/${repo}/manifests/sha256:`)).length;
    expect(gets).toBeLessThanOrEqual(MAX_INLINE_READS);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^bkcache: error: .*more than 1024 manifests and configs.* \[RESOURCE_EXHAUSTED\]\n$/);
  });
});
