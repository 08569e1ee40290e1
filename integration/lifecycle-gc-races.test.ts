// gc against a registry that changes under it: tags re-pointed, added or
// moved between gc's listing and its deletes. Distribution deletes a
// manifest by digest and with it every tag naming it at that moment, so a
// tag pointed at an expired manifest while gc judged the repository would go
// with it. The fault proxy lets the test act on the real registry at a fixed
// point of gc's run: after its listing, before its deletes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { MANIFEST_MEDIA_TYPES } from '../src/oci/media-types.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { startFaultProxy, type FaultProxy } from './harness/fault-proxy.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
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

/** A cache of `n` results created at `start`, pushed to repo:tag; its manifest digest. */
async function pushCache(repoTag: string, prefix: string, start: Date): Promise<string> {
  const c = chainGraph(2, { prefix, start });
  const src = await writeLocal(c.graph, c.blobs);
  const res = await copyCache([parseCacheSpec(src)], parseCacheSpec(`type=registry,ref=${reg.host}/${repoTag},registry.insecure=true`));
  return res.manifest!.digest;
}

/** Points repo:tag at the manifest `digest` (what a concurrent push of the same cache does). */
async function retag(repo: string, digest: string, tag: string): Promise<void> {
  const got = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`, { headers: { accept: ACCEPT } });
  const body = Buffer.from(await got.arrayBuffer());
  const put = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': got.headers.get('content-type')! }, body });
  expect(put.status).toBe(201);
}

async function tagDigest(repo: string, tag: string): Promise<string | undefined> {
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  return r.status === 200 ? r.headers.get('docker-content-digest')! : undefined;
}

const OLD = new Date('2025-01-01T00:00:00Z');

describe('gc while the repository changes', () => {
  it('a kept tag re-pointed at, and a new tag pushed to, an expired manifest after the listing: neither is deleted', async () => {
    const repo = 'race/retag';
    const a = await pushCache(`${repo}:old-a`, 'race-a', OLD);
    const b = await pushCache(`${repo}:old-b`, 'race-b', OLD);
    const c = await pushCache(`${repo}:old-c`, 'race-c', OLD);
    await pushCache(`${repo}:main`, 'race-main', new Date());
    proxy.reset();
    // Once gc reads old-a's manifest (it has listed and resolved every tag by then), a CI job
    // pushes the same cache as `main` (kept) and as a new tag `fresh`, before gc sees the answer.
    proxy.rules.push({
      name: 'concurrent pushes',
      times: 1,
      match: (r) => r.method === 'GET' && r.path === `/v2/${repo}/manifests/${a}`,
      action: {
        rewrite: async () => {
          await retag(repo, a, 'main');
          await retag(repo, b, 'fresh');
        },
      },
    });
    const r = await runCli(['gc', '--format', 'json', '--repository', `type=registry,ref=${proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d', '--keep', 'main']);
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.log.some((x) => x.fault === 'concurrent pushes')).toBe(true);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-c'], kept: ['main', 'old-a', 'old-b'] });
    expect(await tagDigest(repo, 'main')).toBe(a);
    expect(await tagDigest(repo, 'fresh')).toBe(b);
    expect(await tagDigest(repo, 'old-a')).toBe(a);
    expect(await tagDigest(repo, 'old-c')).toBeUndefined();
    expect(await tagDigest(repo, c)).toBeUndefined();
  });

  it('an expired tag moved to a new cache after the listing is reported kept (changed), not deleted, and its new cache stays', async () => {
    const repo = 'race/moved';
    const a = await pushCache(`${repo}:old-a`, 'moved-a', OLD);
    const fresh = await pushCache(`${repo}:recent`, 'moved-fresh', new Date());
    proxy.reset();
    proxy.rules.push({
      name: 'tag moved',
      times: 1,
      match: (r) => r.method === 'GET' && r.path === `/v2/${repo}/manifests/${a}`,
      action: { rewrite: () => retag(repo, fresh, 'old-a') },
    });
    const r = await runCli(['gc', '--repository', `type=registry,ref=${proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/deleted old-a/);
    expect(r.stdout).toMatch(/kept old-a .*\(changed\)/);
    expect(await tagDigest(repo, 'old-a')).toBe(fresh);
    expect(await tagDigest(repo, 'recent')).toBe(fresh);
  });
});

describe('gc of many tags', () => {
  it('judges each manifest once, however many tags name it (one read of its config), and deletes it once', async () => {
    const repo = 'many/same';
    const digest = await pushCache(`${repo}:t0`, 'many-same', OLD);
    const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
    for (const t of tags.slice(1)) await retag(repo, digest, t);
    proxy.reset();
    const r = await runCli(['gc', '--format', 'json', '--repository', `type=registry,ref=${proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: [...tags].sort(), kept: [] });
    const gets = (kind: string) => proxy.log.filter((x) => x.method === 'GET' && x.path.startsWith(`/v2/${repo}/${kind}/`)).length;
    expect(gets('blobs')).toBe(1);
    expect(gets('manifests')).toBe(1);
    expect(proxy.log.filter((x) => x.method === 'DELETE').length).toBe(1);
  });
});
