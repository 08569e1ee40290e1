// What gc reports when the registry's deletes do not go as asked: one refused
// midway, one acknowledged (202) but not done, one that another gc did first
// (404). The report must say what is gone and what is not, as one JSON
// object on stdout, with the error on stderr and its exit code.
import { describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli } from './harness/cli.js';
import { faultyRegistry } from './harness/faulty-registry.js';
import { tagDigest } from './harness/registry-tags.js';

const OLD = new Date('2025-01-01T00:00:00Z');
const env = faultyRegistry({});

/** Old caches tagged old-a, old-b, old-c in `repo`, each its own manifest; their digests by tag. */
async function oldCaches(repo: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of ['old-a', 'old-b', 'old-c']) {
    const c = chainGraph(2, { prefix: `${repo}-${t}`, start: OLD });
    const res = await copyCache([parseCacheSpec(await writeLocal(c.graph, c.blobs))], parseCacheSpec(`type=registry,ref=${env.reg.host}/${repo}:${t},registry.insecure=true`));
    out[t] = res.manifest!.digest;
  }
  return out;
}

async function tags(repo: string): Promise<string[]> {
  const doc = (await (await fetch(`${env.reg.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] | null };
  return (doc.tags ?? []).sort();
}

const gc = (repo: string, ...extra: string[]) => runCli(['gc', ...extra, '--repository', `type=registry,ref=${env.proxy.host}/${repo},registry.insecure=true`, '--older-than', '30d']);
const deleteOf = (repo: string, digest: string) => (r: { method: string; path: string }) => r.method === 'DELETE' && r.path === `/v2/${repo}/manifests/${digest}`;

describe('gc reports what its deletes did', () => {
  it('a delete refused midway: the JSON on stdout lists what was deleted and what was not; the error is on stderr with its exit code', async () => {
    const repo = 'del/denied';
    const d = await oldCaches(repo);
    env.proxy.reset();
    env.proxy.rules.push({
      name: 'deny',
      match: deleteOf(repo, d['old-b']!),
      action: { respond: 403, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'tag is immutable' }] }) },
    });
    const r = await gc(repo, '--format', 'json');
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-a'], kept: [], failed: ['old-b', 'old-c'] });
    const err = JSON.parse(r.stderr.trim()) as { error: { code: string; exitCode: number; message: string } };
    expect(err.error).toMatchObject({ code: 'PERMISSION_DENIED', exitCode: 4 });
    expect(err.error.message).toMatch(/deleted 1, not deleted 2/);
    expect(await tags(repo)).toEqual(['old-b', 'old-c']);

    const text = await gc(repo);
    expect(text.code).toBe(4);
    expect(text.stdout).toMatch(/not deleted old-b \S+ \(delete-failed\)/);
    expect(text.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a delete the registry accepts (202) and does not do: reported not deleted, exit 1', async () => {
    const repo = 'del/ignored';
    const d = await oldCaches(repo);
    env.proxy.reset();
    env.proxy.rules.push({ name: 'ignore', match: deleteOf(repo, d['old-c']!), action: { respond: 202 } });
    const r = await gc(repo, '--format', 'json');
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-a', 'old-b'], kept: [], failed: ['old-c'] });
    expect(r.stderr).toMatch(/accepted the DELETE but still serves 1 tag \(old-c\)/);
    expect(await tags(repo)).toEqual(['old-c']);
  });

  it('a manifest another gc deleted first (DELETE answered 404): its tags are gone, and gc succeeds', async () => {
    const repo = 'del/raced';
    const d = await oldCaches(repo);
    env.proxy.reset();
    // The registry deletes it, and the answer says it was already gone: another gc got there first.
    env.proxy.rules.push({
      name: 'deleted first',
      match: deleteOf(repo, d['old-b']!),
      action: {
        rewrite: (res) => {
          res.status = 404;
          res.body = Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
        },
      },
    });
    const r = await gc(repo, '--format', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-a', 'old-b', 'old-c'], kept: [] });
    expect(await tags(repo)).toEqual([]);
    expect(await tagDigest(env.reg, repo, d['old-b']!)).toBeUndefined();
  });

  it('the look after the deletes fails: what the registry accepted is reported deleted, and the error follows', async () => {
    const repo = 'del/unseen';
    await oldCaches(repo);
    env.proxy.reset();
    let deleting = false;
    env.proxy.rules.push(
      {
        // Never fires: notes that the deletes have begun (the tags were resolved before, twice).
        name: 'deletes begun',
        match: (r) => {
          if (r.method === 'DELETE') deleting = true;
          return false;
        },
        action: { respond: 500 },
      },
      {
        name: 'look refused',
        match: (r) => deleting && r.method === 'HEAD' && r.path === `/v2/${repo}/manifests/old-b`,
        action: { respond: 403, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'no' }] }) },
      },
    );
    const r = await gc(repo, '--format', 'json');
    expect(env.proxy.log.some((x) => x.fault === 'look refused')).toBe(true);
    expect(r.code, r.stderr).toBe(4);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old-a', 'old-b', 'old-c'], kept: [] });
    expect(await tags(repo)).toEqual([]);
  });
});
