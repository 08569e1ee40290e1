// Gateway policies end to end: two real `bkcache serve` daemons with the
// gateway in front of one real docker-registry, real `bkcache copy` processes
// as concurrent writers, and `bkcache stats` reading a daemon's /metrics.
// - merge: 4 writers push to one tag at once through 2 daemons, 3 rounds: no
//   writer's records are lost, both daemons serve the same merged digest, the
//   project's import reads it, and it is byte for byte what `bkcache copy`
//   writes from the same sources in the merge order;
// - trim on merge (maxAge);
// - repairOnRead: a layer blob deleted from the registry is a miss for the
//   results that named it, and the repaired cache imports;
// - stats: hits, misses, bytes, merges, repairs, trims per tenant and repository.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memberTag } from '../src/cache/lifecycle/family.js';
import { tempDir } from '../test/tmp.js';
import { chainGraph, sha, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { runCli, runJson } from './harness/cli.js';
import { insecureHosts, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let reg: StartedRegistry;
const gws: GatewayProcess[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  const dir = tempDir('bkcache-gw-policies-');
  const cfg = path.join(dir, 'cfg.yaml');
  writeFileSync(
    cfg,
    insecureHosts(reg.host) +
      `metricsAddr: 127.0.0.1:0
gateway:
  listen: tcp://127.0.0.1:0
  upstream: ${reg.host}/pol
  metricsRepositoryLabel: true
  policies:
    - { repositories: "cache/aged/**", merge: true, maxAge: 30d }
    - { repositories: "cache/**", merge: true, repairOnRead: true }
    - { repositories: "repair/**", repairOnRead: true }
`,
  );
  gws.push(await startGatewayFromConfig(cfg), await startGatewayFromConfig(cfg));
});

afterAll(async () => {
  for (const g of gws) {
    await g.d.stop();
    g.d.cleanup();
  }
  await reg?.stop();
});

const gwRef = (g: GatewayProcess, repoTag: string) => `type=registry,ref=${g.host}/${repoTag},registry.insecure=true`;

interface Writer {
  spec: string;
  keys: string[];
  /** The writer's newest result, for the merge order. */
  newest: number;
  /** Layer i is step i's own layer (step i's result is layers 0..i). */
  layers: string[];
}

/** A local cache of a 3-step chain whose keys and layers are the writer's own. */
async function writer(prefix: string, start: number): Promise<Writer> {
  const { graph, blobs, nodes } = chainGraph(3, { prefix, start: new Date(start) });
  const layers = nodes[2]!.result!.layers.map((l) => l.digest);
  return { spec: await writeLocal(graph, blobs), keys: [0, 1, 2].map((i) => sha(`${prefix}step-${i}`)), newest: start + 2 * HOUR, layers };
}

function push(g: GatewayProcess, w: Writer, repoTag: string) {
  return runJson<{ manifest: { digest: string } }>(['copy', '--import-cache', w.spec, '--export-cache', gwRef(g, repoTag), '--format', 'json']);
}

async function getManifest(base: string, repoTag: string): Promise<{ digest: string; bytes: Buffer; doc: any }> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT } });
  expect(res.status, `${base} ${repoTag}`).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { digest: res.headers.get('docker-content-digest')!, bytes, doc: JSON.parse(bytes.toString('utf8')) };
}

async function configOf(base: string, repo: string, manifest: any): Promise<any> {
  const d = manifest.config?.digest ?? manifest.manifests.at(-1).digest;
  const res = await fetch(`${base}/v2/${repo}/blobs/${d}`);
  expect(res.status).toBe(200);
  return JSON.parse(Buffer.from(await res.arrayBuffer()).toString('utf8'));
}

/** Keys of the records that still have a result (`layers` in the cache config, BuildKit's CacheRecord.Results... by chain). */
function resultKeys(config: any): Set<string> {
  return new Set(config.records.filter((r: any) => (r.layers ?? []).length + (r.results ?? []).length > 0).map((r: any) => r.digest));
}

describe('merge: concurrent writers add up', () => {
  const rounds: { tag: string; writers: Writer[] }[] = [];

  it('4 writers through 2 daemons, 3 rounds: no records lost, both daemons serve one digest', async () => {
    const now = Date.now();
    for (let r = 0; r < 3; r++) {
      const writers: Writer[] = [];
      for (let w = 0; w < 4; w++) writers.push(await writer(`r${r}w${w}-`, now - 10 * DAY + (r * 4 + w) * 5 * HOUR));
      const tag = `cache/app:round${r}`;
      // At the same time, alternating daemons.
      const pushed = await Promise.all(writers.map((w, i) => push(gws[i % 2]!, w, tag)));
      // Each writer's PUT answered with the digest of the bytes it sent, and landed under its own member tag.
      const tags = (await (await fetch(`${reg.url}/v2/pol/cache/app/tags/list`)).json()) as { tags: string[] };
      for (const p of pushed) expect(tags.tags).toContain(memberTag(`round${r}`, p.manifest.digest));

      const a = await getManifest(gws[0]!.url, tag);
      const b = await getManifest(gws[1]!.url, tag);
      expect(b.digest).toBe(a.digest);
      expect(b.bytes.equals(a.bytes)).toBe(true);
      const config = await configOf(gws[1]!.url, 'cache/app', a.doc);
      const kept = resultKeys(config);
      for (const w of writers) for (const k of w.keys) expect(kept.has(k), `round ${r}: ${k}`).toBe(true);
      // Readers that bypass the gateway find the merged cache under the tag too.
      const direct = await getManifest(reg.url, `pol/${tag}`);
      expect(direct.digest).toBe(a.digest);
      rounds.push({ tag, writers });
    }
  });

  it('a later push to a merged tag adds to it', async () => {
    const late = await writer('late-', Date.now() - HOUR * 5);
    await push(gws[1]!, late, rounds[0]!.tag);
    const m = await getManifest(gws[0]!.url, rounds[0]!.tag);
    const kept = resultKeys(await configOf(gws[0]!.url, 'cache/app', m.doc));
    for (const w of [...rounds[0]!.writers, late]) for (const k of w.keys) expect(kept.has(k)).toBe(true);
    rounds[0]!.writers.push(late);
  });

  it('the merged cache imports, and is what bkcache copy writes from the same sources, newest first', async () => {
    const { tag, writers } = rounds[1]!;
    const summary = await runJson<{ kind: string; records: number }>(['inspect', '--import-cache', gwRef(gws[0]!, tag), '--format', 'json']);
    expect(summary).toMatchObject({ kind: 'image-manifest', records: 12 });
    const ordered = [...writers].sort((x, y) => y.newest - x.newest);
    const dest = tempDir('bkcache-gw-merge-copy-');
    const copied = await runJson<{ manifest: { digest: string } }>([
      'copy',
      ...ordered.flatMap((w) => ['--import-cache', w.spec]),
      '--export-cache', `type=local,dest=${dest}`,
      '--format', 'json',
    ]);
    const served = await getManifest(gws[1]!.url, tag);
    expect(served.digest).toBe(copied.manifest.digest);
  });
});

describe('trim on every merge', () => {
  it('maxAge drops old results from the merged cache', async () => {
    const now = Date.now();
    const old = await writer('old-', now - 60 * DAY);
    // Straddles the cutoff: its first two results are older than 30 days, its last is not.
    const mixed = await writer('mixed-', now - 30 * DAY - 90 * 60_000);
    const fresh = await writer('fresh-', now - 2 * HOUR);
    await Promise.all([push(gws[0]!, old, 'cache/aged/app:main'), push(gws[1]!, mixed, 'cache/aged/app:main'), push(gws[0]!, fresh, 'cache/aged/app:main')]);
    const m = await getManifest(gws[0]!.url, 'cache/aged/app:main');
    expect((await getManifest(gws[1]!.url, 'cache/aged/app:main')).digest).toBe(m.digest);
    const config = await configOf(gws[0]!.url, 'cache/aged/app', m.doc);
    const kept = resultKeys(config);
    expect([...kept].sort()).toEqual([...fresh.keys, mixed.keys[2]!].sort());
    const all = new Set(config.records.map((r: any) => r.digest));
    for (const k of old.keys) expect(all.has(k)).toBe(false);
  });
});

describe('repairOnRead', () => {
  it('a layer the registry lost is a miss for the results that named it; the repaired cache imports', async () => {
    const w = await writer('repair-', Date.now() - DAY);
    const pushed = await push(gws[0]!, w, 'repair/app:main');
    const before = await getManifest(reg.url, 'pol/repair/app:main');
    expect(before.digest).toBe(pushed.manifest.digest);
    const top = w.layers[2]!;
    // distribution: DELETE unlinks the blob from the repository, so a HEAD there is a 404.
    expect((await fetch(`${reg.url}/v2/pol/repair/app/blobs/${top}`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(`${reg.url}/v2/pol/repair/app/blobs/${top}`, { method: 'HEAD' })).status).toBe(404);

    const served = await getManifest(gws[0]!.url, 'repair/app:main');
    expect(served.digest).not.toBe(before.digest);
    expect(served.doc.layers.map((l: any) => l.digest)).not.toContain(top);
    // The other daemon serves its config by digest: it was written upstream.
    const config = await configOf(gws[1]!.url, 'repair/app', served.doc);
    expect([...resultKeys(config)].sort()).toEqual(w.keys.slice(0, 2).sort());
    expect((await getManifest(gws[1]!.url, 'repair/app:main')).digest).toBe(served.digest);
    // Every blob the served cache names is there: verify through the gateway passes, and the import reads it.
    const v = await runJson<{ ok: boolean; records: number }>(['verify', '--format', 'json', '--import-cache', gwRef(gws[1]!, 'repair/app:main')]);
    expect(v).toMatchObject({ ok: true, records: 2 });
    // Without merge the tag itself is left alone: a push racing the repair must not be overwritten.
    expect((await getManifest(reg.url, 'pol/repair/app:main')).digest).toBe(before.digest);
  });

  it('a cache whose every result lost a blob is a miss', async () => {
    const w = await writer('lost-', Date.now() - DAY);
    await push(gws[1]!, w, 'repair/lost:main');
    const first = w.layers[0]!;
    expect((await fetch(`${reg.url}/v2/pol/repair/lost/blobs/${first}`, { method: 'DELETE' })).status).toBe(202);
    const res = await fetch(`${gws[0]!.url}/v2/repair/lost/manifests/main`, { headers: { accept: ACCEPT } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).errors[0].code).toBe('MANIFEST_UNKNOWN');
  });
});

describe('bkcache stats', () => {
  it('prints per-tenant and per-repository counters from a running daemon', async () => {
    const addr = String(gws[0]!.d.logs.find((l) => l.msg === 'listening')?.metrics ?? '');
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    const s = await runJson<any>(['stats', '--metrics-addr', addr, '--format', 'json']);
    expect(s.total.hits).toBeGreaterThan(0);
    expect(s.total.misses).toBeGreaterThan(0);
    expect(s.total.blobsPushed).toBeGreaterThan(0);
    expect(s.total.bytesPushed).toBeGreaterThan(0);
    expect(s.total.blobsServed).toBeGreaterThan(0);
    expect(s.total.merges).toBeGreaterThan(0);
    expect(s.total.repairs).toBeGreaterThan(0);
    expect(s.total.trims).toBeGreaterThan(0);
    expect(Object.keys(s.tenants)).toEqual(['_anonymous']);
    expect(s.repositories['cache/app'].merges).toBeGreaterThan(0);
    expect(s.repositories['repair/app'].repairs).toBeGreaterThan(0);
    const text = await runCli(['stats', '--metrics-addr', addr]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^tenant\s+hits\s+misses/);
    expect(text.stdout).toContain('_anonymous');
    const bad = await runCli(['stats', '--metrics-addr', '127.0.0.1:1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\[UNAVAILABLE\]/);
  });
});
