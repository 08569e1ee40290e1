// The lifecycle commands against caches in a real distribution registry,
// through the built CLI: verify finds blobs the registry lost and repair
// rewrites the tag without them; trim, du, diff and the pictures read
// registry caches; gc deletes whole caches by age through the registry API;
// and a trim or repair killed at any moment never leaves a tag that names a
// missing blob.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { verifyCache } from '../src/cache/lifecycle/verify.js';
import { MANIFEST_MEDIA_TYPES } from '../src/oci/media-types.js';
import { LocalStore } from '../src/store/local/index.js';
import { RegistryStore } from '../src/store/registry/index.js';
import { BK } from '../test/fixtures.js';
import { tempDir } from '../test/tmp.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { BIN, runCli, runJson } from './harness/cli.js';
import { startDaemon } from './harness/daemon.js';
import { connect } from '../src/client/index.js';
import { startFaultProxy } from './harness/fault-proxy.js';
import { pushInlineImage } from './harness/inline-image.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
let reg: StartedRegistry;
const ref = (repoTag: string) => `type=registry,ref=${reg.host}/${repoTag},registry.insecure=true`;

beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

async function push(fixture: string, repoTag: string, attrs = ''): Promise<string> {
  const res = await copyCache([parseCacheSpec(`type=local,src=${path.join(BK, fixture)}`)], parseCacheSpec(ref(repoTag) + attrs));
  return res.manifest!.digest;
}

async function deleteBlob(repo: string, digest: string): Promise<void> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, { method: 'DELETE' });
  expect(res.status).toBe(202);
}

/** Every tag of a repository resolves to a manifest whose blobs all exist (checked by our verify and by plain GETs). */
async function expectNoDanglingTag(repoTag: string): Promise<'absent' | 'ok'> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const head = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  if (head.status === 404) return 'absent';
  expect(head.status).toBe(200);
  const v = await verifyCache(parseCacheSpec(ref(repoTag)));
  await v.opened?.close();
  expect(v.report.missing, repoTag).toEqual([]);
  return 'ok';
}

describe('verify and repair on a registry', () => {
  it('an intact cache verifies (deep), exit 0', async () => {
    const manifest = await push('registry-index-oci-max', 'verify/ok:latest');
    const out = await runJson(['verify', '--deep', '--format', 'json', '--import-cache', ref('verify/ok:latest')]);
    expect(out).toEqual({ ok: true, manifest, blobs: 9, missing: [], corrupt: [], records: 11, brokenRecords: 0 });
  });

  it('reads the tag and its manifest in one GET, and a manifest whose bytes lie is reported corrupt, not thrown', async () => {
    const manifest = await push('registry-index-docker-min', 'verify/once:latest');
    const proxy = await startFaultProxy(reg.url);
    const via = `type=registry,ref=${proxy.host}/verify/once:latest,registry.insecure=true`;
    try {
      const ok = await verifyCache(parseCacheSpec(via));
      await ok.opened?.close();
      expect(ok.report).toMatchObject({ ok: true, manifest });
      const manifestRequests = proxy.log.filter((r) => r.path.includes('/manifests/')).map((r) => `${r.method} ${r.path}`);
      expect(manifestRequests).toEqual(['GET /v2/verify/once/manifests/latest']);

      // Every manifest answer with one byte flipped, Docker-Content-Digest as the registry sent it.
      proxy.rules.push({
        name: 'rot',
        match: (r) => r.method === 'GET' && r.path.includes('/manifests/'),
        action: { rewrite: (res) => void (res.body[0] = res.body[0]! ^ 0xff) },
      });
      const bad = await runCli(['verify', '--format', 'json', '--import-cache', via]);
      expect(bad.code, bad.stderr).toBe(5);
      expect(JSON.parse(bad.stdout)).toEqual({ ok: false, manifest, blobs: 0, missing: [], corrupt: [manifest], records: 0, brokenRecords: 0 });
    } finally {
      await proxy.stop();
    }
  });

  it('a blob the registry serves with wrong bytes: only --deep finds it, as corrupt, exit 5', async () => {
    // A fixture no other test pushes: the registry stores a blob once for every repository.
    await push('registry-imagemanifest-zstd-max', 'verify/rot:latest');
    const v0 = await verifyCache(parseCacheSpec(ref('verify/rot:latest')));
    const victim = v0.opened!.graph.nodes.find((n) => n.result)!.result!.layers[0]!.digest;
    await v0.opened!.close();
    // Bit rot on the registry's disk: same size, one byte flipped. HEAD still answers 200.
    const file = reg.blobPath(victim);
    const bytes = readFileSync(file);
    bytes[0] = bytes[0]! ^ 0xff;
    writeFileSync(file, bytes);
    const shallow = await runCli(['verify', '--format', 'json', '--import-cache', ref('verify/rot:latest')]);
    expect(shallow.code).toBe(0);
    expect(JSON.parse(shallow.stdout)).toMatchObject({ ok: true, corrupt: [] });
    const deep = await runCli(['verify', '--deep', '--format', 'json', '--import-cache', ref('verify/rot:latest')]);
    expect(deep.code).toBe(5);
    expect(JSON.parse(deep.stdout)).toMatchObject({ ok: false, missing: [], corrupt: [victim] });
  });

  it('a blob the registry lost: exit 5 with the digest; --repair to the same ref drops those results and the tag moves', async () => {
    await push('registry-imagemanifest-max', 'verify/lost:latest');
    const du = await runJson<{ results: { record: string; layers: number }[] }>(['du', '--format', 'json', '--import-cache', ref('verify/lost:latest')]);
    expect(du.results.length).toBe(6);
    // The top layer of the longest chain.
    const v0 = await verifyCache(parseCacheSpec(ref('verify/lost:latest')));
    const victim = v0.opened!.graph.nodes.find((n) => n.result?.layers.length === 5)!.result!.layers[4]!.digest;
    await v0.opened!.close();
    await deleteBlob('verify/lost', victim);

    const broken = await runCli(['verify', '--format', 'json', '--import-cache', ref('verify/lost:latest')]);
    expect(broken.code).toBe(5);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, missing: [victim], brokenRecords: 1 });

    const repaired = await runCli(['verify', '--repair', '--import-cache', ref('verify/lost:latest'), '--export-cache', ref('verify/lost:latest')]);
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(repaired.stdout).toMatch(/repaired: wrote sha256:[0-9a-f]{64} without 1 results/);
    const after = await runJson(['verify', '--deep', '--format', 'json', '--import-cache', ref('verify/lost:latest')]);
    expect(after).toMatchObject({ ok: true, missing: [], brokenRecords: 0, records: 10 });
  });
});

describe('trim, du, diff and pictures on registry caches', () => {
  it('trim to another tag: JSON shape, and the result is what copy writes', async () => {
    await push('registry-index-oci-max', 'trim/src:latest');
    const out = await runJson<{ before: object; after: { bytes: number }; droppedResults: number }>([
      'trim', '--format', 'json', '--max-size', '2480KB',
      '--import-cache', ref('trim/src:latest'), '--export-cache', ref('trim/src:trimmed'),
    ]);
    expect(Object.keys(out)).toEqual(['before', 'after', 'droppedResults']);
    expect(out.after.bytes).toBeLessThanOrEqual(2_480_000);
    expect(out.droppedResults).toBeGreaterThan(0);
    const trimmed = await verifyCache(parseCacheSpec(ref('trim/src:trimmed')), {}, { deep: true });
    await trimmed.opened?.close();
    expect(trimmed.report.ok).toBe(true);
    const copied = await copyCache([parseCacheSpec(ref('trim/src:trimmed'))], parseCacheSpec(ref('trim/copy:latest')));
    expect(copied.manifest!.digest).toBe(trimmed.report.manifest);
    const dry = await runCli(['trim', '--dry-run', '--max-age', '1s', '--import-cache', ref('trim/src:latest')]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/dropped 6 results[\s\S]*dry run: nothing written/);
  });

  it('diff of two fixtures pushed to the registry, and the DOT picture renders', async () => {
    await push('registry-index-oci-max', 'diff/a:latest');
    await push('registry-index-docker-min', 'diff/b:latest');
    const d = await runJson(['diff', '--format', 'json', '--import-cache', ref('diff/a:latest'), '--import-cache', ref('diff/b:latest')]);
    expect(d).toEqual({ common: 11, onlyA: 0, onlyB: 0, divergences: [] });
    const dot = await runCli(['inspect', '--format', 'dot', '--import-cache', ref('diff/a:latest')]);
    expect(dot.code).toBe(0);
    expect(dot.stdout.startsWith('digraph cache {')).toBe(true);
    const mm = await runCli(['inspect', '--format', 'mermaid', '--import-cache', ref('diff/a:latest')]);
    expect(mm.stdout.startsWith('flowchart TB')).toBe(true);
  });
});

describe('gc on a registry', () => {
  it('deletes expired caches by manifest, keeps globs, recent caches and images; says what the registry GC must do', async () => {
    await push('registry-imagemanifest-max', 'gc/app:old'); // records from 2026-11-22
    await push('registry-imagemanifest-max', 'gc/app:main'); // same manifest, kept by glob
    await push('registry-index-oci-max', 'gc/app:old-index', ',image-manifest=false'); // another manifest
    await pushInlineImage(reg.host, 'gc/app:image');
    const recent = chainGraph(2, { prefix: 'gc-recent', start: new Date() });
    const src = await writeLocal(recent.graph, recent.blobs);
    await copyCache([parseCacheSpec(src)], parseCacheSpec(ref('gc/app:recent')));

    const dry = await runJson(['gc', '--dry-run', '--format', 'json', '--repository', ref('gc/app'), '--older-than', '1d', '--keep', 'main']);
    expect(dry).toEqual({ deleted: ['old-index'], kept: ['image', 'main', 'old', 'recent'] });
    const text = await runCli(['gc', '--repository', ref('gc/app'), '--older-than', '1d', '--keep', 'main']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/deleted old-index/);
    expect(text.stdout).toMatch(/kept old .*shares-manifest/);
    expect(text.stdout).toMatch(/garbage-collect/);
    const tags = (await (await fetch(`${reg.url}/v2/gc/app/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['image', 'main', 'old', 'recent']);
    for (const t of tags.tags) expect(await expectNoDanglingTag(`gc/app:${t}`)).toBe('ok');
  });

  it('a lying tag list (names twice, names no tag can have) and an index naming an expired cache: gc deletes only what nothing kept names', async () => {
    const old = await push('registry-index-oci-max', 'gc/lie:old', ',image-manifest=false');
    await push('registry-imagemanifest-max', 'gc/lie:old-2');
    // Someone's index (an image index, a signature list) tagged `pinned` lists old's cache manifest.
    const oldDesc = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: old, size: 0 };
    oldDesc.size = Number((await fetch(`${reg.url}/v2/gc/lie/manifests/${old}`, { method: 'HEAD', headers: { accept: ACCEPT } })).headers.get('content-length'));
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [oldDesc] });
    const put = await fetch(`${reg.url}/v2/gc/lie/manifests/pinned`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body });
    expect(put.status).toBe(201);
    const proxy = await startFaultProxy(reg.url);
    try {
      proxy.rules.push({
        name: 'lying tag list',
        match: (r) => r.method === 'GET' && r.path.startsWith('/v2/gc/lie/tags/list'),
        action: {
          rewrite: (r) => {
            const doc = JSON.parse(r.body.toString()) as { tags: string[] };
            doc.tags.push('old-2', '../../../v2/gc/app/manifests/main', old, 'a b', '-x');
            r.body = Buffer.from(JSON.stringify(doc));
          },
        },
      });
      const repo = `type=registry,ref=${proxy.host}/gc/lie,registry.insecure=true`;
      const dry = await runJson(['gc', '--dry-run', '--format', 'json', '--repository', repo, '--older-than', '1d']);
      expect(dry).toEqual({ deleted: ['old-2'], kept: ['-x', '../../../v2/gc/app/manifests/main', 'a b', 'old', 'pinned', old].sort() });
      const text = await runCli(['gc', '--repository', repo, '--older-than', '1d']);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/kept old .*named-by-kept-index/);
      expect(text.stdout).toMatch(/kept a b {2}\(invalid-tag\)/);
      expect(text.stdout.match(/deleted old-2/g)).toHaveLength(1);
    } finally {
      await proxy.stop();
    }
    const tags = (await (await fetch(`${reg.url}/v2/gc/lie/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['old', 'pinned']);
    expect((await fetch(`${reg.url}/v2/gc/lie/manifests/${old}`, { method: 'HEAD', headers: { accept: ACCEPT } })).status).toBe(200);
    expect(await expectNoDanglingTag('gc/lie:old')).toBe('ok');
  });

  it('a registry that answers a manifest HEAD by digest without a manifest media type: gc still deletes the manifest, not a blob of that digest', async () => {
    await push('registry-index-oci-max', 'gc/ct:old', ',image-manifest=false');
    await push('registry-index-oci-max', 'gc/ct:old-2', ',image-manifest=false');
    const proxy = await startFaultProxy(reg.url);
    try {
      proxy.rules.push({
        name: 'manifest HEAD by digest as octet-stream',
        match: (r) => r.method === 'HEAD' && r.path.startsWith('/v2/gc/ct/manifests/sha256:'),
        action: { rewrite: (r) => void (r.headers['content-type'] = 'application/octet-stream') },
      });
      const r = await runJson(['gc', '--format', 'json', '--repository', `type=registry,ref=${proxy.host}/gc/ct,registry.insecure=true`, '--older-than', '1d']);
      expect(r).toEqual({ deleted: ['old', 'old-2'], kept: [] });
      expect(proxy.log.filter((x) => x.method === 'DELETE').map((x) => x.path.replace(/sha256:.*/, ''))).toEqual(['/v2/gc/ct/manifests/']);
    } finally {
      await proxy.stop();
    }
    const tags = await (await fetch(`${reg.url}/v2/gc/ct/tags/list`)).json() as { tags: string[] | null };
    expect(tags.tags ?? []).toEqual([]);
  });

  it('lists the tags of a repository, and a repository that does not exist has none', async () => {
    for (const t of ['p1', 'p2', 'p3', 'p4', 'p5']) await push('registry-index-oci-max', `gc/pages:${t}`);
    const store = new RegistryStore(`${reg.host}/gc/pages`, { insecure: true });
    const none = new RegistryStore(`${reg.host}/gc/none`, { insecure: true });
    try {
      // Distribution 2.8 answers every tag at once; paging is tested against a stub in test/store/registry/tags.test.ts.
      expect((await store.tags({ pageSize: 2 })).sort()).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
      expect(await none.tags()).toEqual([]);
    } finally {
      await store.close();
      await none.close();
    }
  });

  it('a registry that refuses deletes: a clear error, nothing deleted', async () => {
    const ro = await startRegistry({ deleteEnabled: false });
    try {
      await copyCache([parseCacheSpec(`type=local,src=${path.join(BK, 'registry-index-oci-max')}`)], parseCacheSpec(`type=registry,ref=${ro.host}/gc/ro:old,registry.insecure=true`));
      const r = await runCli(['gc', '--repository', `type=registry,ref=${ro.host}/gc/ro,registry.insecure=true`, '--older-than', '1d']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/does not allow deletes/);
      expect((await fetch(`${ro.url}/v2/gc/ro/manifests/old`, { method: 'HEAD', headers: { accept: ACCEPT } })).status).toBe(200);
    } finally {
      await ro.stop();
    }
  });
});

describe('gRPC Import with verify_blobs', () => {
  it('drops the results whose chains lost a blob before answering; without the option the graph is as stored', async () => {
    await push('registry-index-oci-max', 'grpc/lost:latest');
    const v0 = await verifyCache(parseCacheSpec(ref('grpc/lost:latest')));
    const victimNode = v0.opened!.graph.nodes.find((n) => n.result?.layers.length === 5)!;
    const victim = victimNode.result!.layers[4]!.digest;
    await v0.opened!.close();
    await deleteBlob('grpc/lost', victim);
    const d = await startDaemon({ env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } });
    const client = connect(d.addr);
    try {
      const plain = await client.import([ref('grpc/lost:latest')]);
      expect(plain.dropped).toEqual([]);
      expect(plain.graph.nodes.some((n) => n.result?.layers.some((l) => l.digest === victim))).toBe(true);
      const checked = await client.import([ref('grpc/lost:latest')], { verifyBlobs: true });
      expect(checked.hit?.index).toBe(0);
      expect(checked.dropped).toEqual([victimNode.digest]);
      expect(checked.graph.nodes.some((n) => n.result?.layers.some((l) => l.digest === victim))).toBe(false);
      expect(checked.graph.nodes.filter((n) => n.result).length).toBe(5);
    } finally {
      client.close();
      await d.stop();
      d.cleanup();
    }
  });
});

/** Runs the CLI and SIGKILLs it after `ms`. */
function runKilled(args: string[], ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

describe('killed mid-run', () => {
  it('trim and repair killed at any moment leave every tag whole', async () => {
    // 40 results of 256 KiB layers each, read from a local layout: real uploads to kill.
    const big = chainGraph(40, { prefix: 'kill', size: () => 256 << 10, start: new Date('2026-01-01T00:00:00Z') });
    const src = await writeLocal(big.graph, big.blobs, tempDir('bkcache-kill-'));
    await copyCache([parseCacheSpec(src)], parseCacheSpec(ref('kill/repair:latest')));
    const outcomes = new Set<string>();
    for (const ms of [150, 300, 450, 600, 900, 1500]) {
      const tag = `t${ms}`;
      await runKilled(['trim', '--max-size', '5MiB', '--import-cache', src, '--export-cache', ref(`kill/trim:${tag}`)], ms);
      outcomes.add(await expectNoDanglingTag(`kill/trim:${tag}`));
      await runKilled(['verify', '--repair', '--import-cache', ref('kill/repair:latest'), '--export-cache', ref('kill/repair:latest')], ms);
      expect(await expectNoDanglingTag('kill/repair:latest')).toBe('ok');
    }
    // The kill landed before the tag at least once (otherwise the test proved nothing).
    expect(outcomes.has('absent')).toBe(true);
  });

  it('gc of a local layout killed at any moment leaves every remaining tag whole', async () => {
    for (const ms of [120, 250, 400, 700]) {
      const dir = tempDir('bkcache-killgc-');
      for (let i = 0; i < 12; i++) {
        const old = i % 2 === 0;
        const c = chainGraph(3, { prefix: `k${ms}-${i}`, size: () => 64 << 10, start: new Date(old ? '2025-01-01T00:00:00Z' : Date.now()) });
        await writeLocal(c.graph, c.blobs, dir, `t${i}`);
      }
      await runKilled(['gc', '--repository', `type=local,src=${dir}`, '--older-than', '30d'], ms);
      const tags = await new LocalStore(dir).tags();
      expect(tags.length).toBeGreaterThanOrEqual(6);
      for (const t of tags) {
        const v = await verifyCache(parseCacheSpec(`type=local,src=${dir},tag=${t.tag}`), {}, { deep: true });
        await v.opened?.close();
        expect(v.report.ok, `${t.tag} after a kill at ${ms} ms`).toBe(true);
      }
    }
  });
});
