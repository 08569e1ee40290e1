// repair and trim replace their target tag; a build may push a newer cache
// to that tag while they run. Moving the tag then would throw the newer cache
// away (a lost update): they must leave it, and say so. The fault proxy lets
// the test push at a fixed point of the run.
import { describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { faultyRegistry } from './harness/faulty-registry.js';
import { retag, tagDigest } from './harness/registry-tags.js';

const env = faultyRegistry({});

/** Pushes a 3-result cache to repo:tag; its manifest digest and its last result's top layer. */
async function pushCache(repoTag: string, prefix: string, start: Date): Promise<{ digest: string; top: string }> {
  const c = chainGraph(3, { prefix, start });
  const res = await copyCache([parseCacheSpec(await writeLocal(c.graph, c.blobs))], parseCacheSpec(`type=registry,ref=${env.reg.host}/${repoTag},registry.insecure=true`));
  const layers = c.graph.nodes.filter((n) => n.result).at(-1)!.result!.layers;
  return { digest: res.manifest!.digest, top: layers.at(-1)!.digest };
}

/** Results then, an hour later and two hours later: `--max-age 1h` drops the first only. */
const HOUR_AND_A_HALF_AGO = () => new Date(Date.now() - 90 * 60_000);
const via = (repoTag: string) => `type=registry,ref=${env.proxy.host}/${repoTag},registry.insecure=true`;

describe('a tag pushed to while repair or trim runs', () => {
  it('repair to the same ref: a push while the repaired cache uploads keeps the tag; exit 1 says so', async () => {
    const repo = 'tagrace/repair';
    const old = await pushCache(`${repo}:latest`, 'tr-old', new Date('2026-01-01T00:00:00Z'));
    const fresh = await pushCache(`${repo}:fresh`, 'tr-fresh', new Date());
    expect((await fetch(`${env.reg.url}/v2/${repo}/blobs/${old.top}`, { method: 'DELETE' })).status).toBe(202);
    env.proxy.reset();
    env.proxy.rules.push({
      name: 'push during repair',
      times: 1,
      match: (r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repo}/manifests/sha256:`),
      action: { rewrite: () => retag(env.reg, repo, fresh.digest, 'latest') },
    });
    const r = await runCli(['verify', '--repair', '--import-cache', via(`${repo}:latest`), '--export-cache', via(`${repo}:latest`)]);
    expect(env.proxy.log.some((x) => x.fault === 'push during repair')).toBe(true);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/changed while this ran.*tag was left as it is.*\[FAILED_PRECONDITION\]/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await tagDigest(env.reg, repo, 'latest')).toBe(fresh.digest);
  });

  it('trim to the same ref: a push right after the cache was read keeps the tag', async () => {
    const repo = 'tagrace/trim';
    await pushCache(`${repo}:latest`, 'tt-old', HOUR_AND_A_HALF_AGO());
    const fresh = await pushCache(`${repo}:fresh`, 'tt-fresh', new Date());
    env.proxy.reset();
    // The first blob trim reads is the cache config, right after the manifest.
    env.proxy.rules.push({
      name: 'push after read',
      times: 1,
      match: (r) => r.method === 'GET' && r.path.startsWith(`/v2/${repo}/blobs/`),
      action: { rewrite: () => retag(env.reg, repo, fresh.digest, 'latest') },
    });
    const r = await runCli(['trim', '--format', 'json', '--max-age', '1h', '--import-cache', via(`${repo}:latest`), '--export-cache', via(`${repo}:latest`)]);
    expect(env.proxy.log.some((x) => x.fault === 'push after read')).toBe(true);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: 'FAILED_PRECONDITION', reason: 'tag-changed', exitCode: 1 } });
    expect(await tagDigest(env.reg, repo, 'latest')).toBe(fresh.digest);
  });

  it('trim to another tag someone pushes to meanwhile keeps that push; with nobody pushing, the tag moves', async () => {
    const repo = 'tagrace/other';
    await pushCache(`${repo}:src`, 'to-src', HOUR_AND_A_HALF_AGO());
    const fresh = await pushCache(`${repo}:fresh`, 'to-fresh', new Date());
    env.proxy.reset();
    env.proxy.rules.push({
      name: 'push during trim',
      times: 1,
      match: (r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repo}/manifests/sha256:`),
      action: { rewrite: () => retag(env.reg, repo, fresh.digest, 'trimmed') },
    });
    const args = ['trim', '--max-age', '1h', '--import-cache', via(`${repo}:src`), '--export-cache', via(`${repo}:trimmed`)];
    const r = await runCli(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tag-changed|changed while this ran/);
    expect(await tagDigest(env.reg, repo, 'trimmed')).toBe(fresh.digest);
    env.proxy.reset();
    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(await tagDigest(env.reg, repo, 'trimmed')).not.toBe(fresh.digest);
  });
});
