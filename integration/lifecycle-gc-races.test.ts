// gc against a registry that changes under it: tags re-pointed, added or
// moved between gc's listing and its deletes. Distribution deletes a
// manifest by digest and with it every tag naming it at that moment, so a
// tag pointed at an expired manifest while gc judged the repository would go
// with it. The fault proxy lets the test act on the real registry at a fixed
// point of gc's run: after its listing, before its deletes.
import { describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { faultyRegistry } from './harness/faulty-registry.js';
import { retag, tagDigest } from './harness/registry-tags.js';

const env = faultyRegistry({});

/** A cache of `n` results created at `start`, pushed to repo:tag; its manifest digest. */
async function pushCache(repoTag: string, prefix: string, start: Date): Promise<string> {
  const c = chainGraph(2, { prefix, start });
  const src = await writeLocal(c.graph, c.blobs);
  const res = await copyCache([parseCacheSpec(src)], parseCacheSpec(`type=registry,ref=${env.reg.host}/${repoTag},registry.insecure=true`));
  return res.manifest!.digest;
}

const OLD = new Date('2025-01-01T00:00:00Z');

describe('gc while the repository changes', () => {
  it('a kept tag re-pointed at, and a new tag pushed to, an expired manifest after the listing: neither is deleted', async () => {
    const repo = 'race/retag';
    const a = await pushCache(`${repo}:old-a`, 'race-a', OLD);
    const b = await pushCache(`${repo}:old-b`, 'race-b', OLD);
    const c = await pushCache(`${repo}:old-c`, 'race-c', OLD);
    await pushCache(`${repo}:main`, 'race-main', new Date());
    env.proxy.reset();
    // Once gc reads old-a's manifest (it has listed and resolved every tag by then), a CI job
    // pushes the same cache as `main` (kept) and as a new tag `fresh`, before gc sees the answer.
    env.proxy.rules.push({
      name: 'concurrent pushes',
      times: 1,
      match: (r) => r.method === 'GET' && r.path === `/v2/${repo}/manifests/${a}`,
      action: {
        rewrite: async () => {
          await retag(env.reg, repo, a, 'main');
          await retag(env.reg, repo, b, 'fresh');
        },
      },
    });
    const r = await runCli(['gc', '--format', 'json', '--repository', `type=registry,ref=${env.proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d', '--keep', 'main']);
    expect(r.code, r.stderr).toBe(0);
    expect(env.proxy.log.some((x) => x.fault === 'concurrent pushes')).toBe(true);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-c'], kept: ['main', 'old-a', 'old-b'] });
    expect(await tagDigest(env.reg, repo, 'main')).toBe(a);
    expect(await tagDigest(env.reg, repo, 'fresh')).toBe(b);
    expect(await tagDigest(env.reg, repo, 'old-a')).toBe(a);
    expect(await tagDigest(env.reg, repo, 'old-c')).toBeUndefined();
    expect(await tagDigest(env.reg, repo, c)).toBeUndefined();
  });

  it('an expired tag moved to a new cache after the listing is reported kept (changed), not deleted, and its new cache stays', async () => {
    const repo = 'race/moved';
    const a = await pushCache(`${repo}:old-a`, 'moved-a', OLD);
    const fresh = await pushCache(`${repo}:recent`, 'moved-fresh', new Date());
    env.proxy.reset();
    env.proxy.rules.push({
      name: 'tag moved',
      times: 1,
      match: (r) => r.method === 'GET' && r.path === `/v2/${repo}/manifests/${a}`,
      action: { rewrite: () => retag(env.reg, repo, fresh, 'old-a') },
    });
    const r = await runCli(['gc', '--repository', `type=registry,ref=${env.proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/deleted old-a/);
    expect(r.stdout).toMatch(/kept old-a .*\(changed\)/);
    expect(await tagDigest(env.reg, repo, 'old-a')).toBe(fresh);
    expect(await tagDigest(env.reg, repo, 'recent')).toBe(fresh);
  });
});

describe('gc of many tags', () => {
  it('judges each manifest once, however many tags name it (one read of its config), and deletes it once', async () => {
    const repo = 'many/same';
    const digest = await pushCache(`${repo}:t0`, 'many-same', OLD);
    const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
    for (const t of tags.slice(1)) await retag(env.reg, repo, digest, t);
    env.proxy.reset();
    const r = await runCli(['gc', '--format', 'json', '--repository', `type=registry,ref=${env.proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: [...tags].sort(), kept: [] });
    const gets = (kind: string) => env.proxy.log.filter((x) => x.method === 'GET' && x.path.startsWith(`/v2/${repo}/${kind}/`)).length;
    expect(gets('blobs')).toBe(1);
    expect(gets('manifests')).toBe(1);
    expect(env.proxy.log.filter((x) => x.method === 'DELETE').length).toBe(1);
  });
});
