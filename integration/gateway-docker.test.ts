// Debian's dockerd 20.10 and its own /usr/bin/docker as the real client of
// the gateway (the gateways' ports given to dockerd as insecure registries):
// - `docker push` / `docker pull` of ordinary images (the busybox base and an
//   image built on it) pass through untouched, in front of a docker-registry
//   and in front of the embedded store: the pulled image is the pushed one,
//   and the upstream holds the manifest bytes docker pushed.
// - An inline-cache image pushed through the gateway, converted by
//   `bkcache copy` into an index-shaped cache behind the gateway, feeds
//   `docker build --cache-from <gateway ref>`: every step CACHED. With
//   imageManifestOnly the upstream holds the image-manifest shape, which this
//   old BuildKit cannot read: it finds no cache there and runs every step
//   (asserted as such), while bkcache reads that shape and can copy it back.
// - With auth: `docker login` with a bkcache token as password (Basic at
//   <gateway>/token), push, pull and `--cache-from` as that tenant; another
//   tenant can neither pull, push nor build from there (and gets the same
//   answer as for a repository that does not exist), but its own cache name
//   falls back to the global tier.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/tmp.js';
import { runJson } from './harness/cli.js';
import { assertAllCached, buildSteps, DOCKER_BIN, pushBusyboxBase, startDockerd, stepsContext, type Dockerd } from './harness/dockerd.js';
import { startGatewayTenants, type GatewayTenants } from './harness/gateway-tenants.js';
import { insecureHosts, startGateway, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

let reg: StartedRegistry;
let gw: GatewayProcess; // in front of reg, prefix gw/
let gwLocal: GatewayProcess; // in front of the embedded store
let gwIm: GatewayProcess; // in front of reg, prefix ecr/, imageManifestOnly
let mt: GatewayTenants; // auth on, in front of its own registry
let dockerd: Dockerd;
const tmp = tempDir('bkcache-gw-docker-');

/** A build context whose steps BuildKit can only skip with a cache: RUN, COPY, RUN. */
const context = (name: string, base: string) => stepsContext(path.join(tmp, name), name, base);

/** What dockerd knows of a local image: its config digest and the manifest digests it was pushed or pulled as. */
async function inspectImage(ref: string): Promise<{ id: string; repoDigests: string[] }> {
  const doc = JSON.parse((await dockerd.docker(['image', 'inspect', ref])).stdout)[0];
  return { id: doc.Id, repoDigests: doc.RepoDigests ?? [] };
}

/** The manifest digest `ref` (HOST/REPO:TAG) was pushed as, from dockerd's RepoDigests. */
async function pushedDigest(ref: string): Promise<string> {
  const repo = ref.slice(0, ref.lastIndexOf(':'));
  const d = (await inspectImage(ref)).repoDigests.find((r) => r.startsWith(`${repo}@`));
  expect(d, `RepoDigests of ${ref}`).toBeDefined();
  return d!.slice(repo.length + 1);
}

/** A manifest read over plain HTTP, straight from a registry (or through a gateway). */
async function manifestAt(base: string, repo: string, ref: string, auth?: string): Promise<{ status: number; contentType: string | null; bytes: Buffer }> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT, ...(auth ? { authorization: auth } : {}) } });
  return { status: res.status, contentType: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Whether the gateway logged a call like `want`; the daemon writes the line as the answer ends, so wait for it a while. */
async function logged(g: GatewayProcess, want: Record<string, unknown>): Promise<boolean> {
  const match = () => g.d.logs.some((l) => l.msg === 'gateway call' && Object.entries(want).every(([k, v]) => l[k] === v));
  for (let i = 0; i < 200 && !match(); i++) await new Promise((r) => setTimeout(r, 100));
  return match();
}

beforeAll(async () => {
  reg = await startRegistry();
  const dir = tempDir('bkcache-gw-docker-cfg-');
  writeFileSync(path.join(dir, 'plain.yaml'), insecureHosts(reg.host));
  gw = await startGateway({ upstream: `${reg.host}/gw`, args: ['--config', path.join(dir, 'plain.yaml')] });
  gwLocal = await startGateway({ upstream: 'local' });
  writeFileSync(
    path.join(dir, 'im.yaml'),
    insecureHosts(reg.host) + `gateway:\n  listen: tcp://127.0.0.1:0\n  upstream: ${reg.host}/ecr\n  imageManifestOnly: true\n`,
  );
  gwIm = await startGatewayFromConfig(path.join(dir, 'im.yaml'));
  mt = await startGatewayTenants();
  // dockerd reads its insecure registries only at start: every gateway is up by now.
  dockerd = await startDockerd({ insecureRegistries: [gw.host, gwLocal.host, gwIm.host, mt.gw.host] });
}, 300_000);

afterAll(async () => {
  await dockerd?.stop();
  for (const g of [gw, gwLocal, gwIm]) {
    await g?.d.stop();
    g?.d.cleanup();
  }
  await mt?.stop();
  await reg?.stop();
}, 120_000);

/** The manifest bytes the docker-registry holds for gateway repository `repo` behind `prefix`. */
const registryBytes = (prefix: string) => async (repo: string, tag: string) => {
  const m = await manifestAt(reg.url, `${prefix}/${repo}`, tag);
  expect(m.status).toBe(200);
  return m.bytes;
};

describe('docker push and pull through the gateway', () => {
  const upstreams: [string, () => GatewayProcess, (repo: string, tag: string) => Promise<Buffer>][] = [
    ['a docker-registry', () => gw, registryBytes('gw')],
    // Not a cache manifest: imageManifestOnly leaves it as docker sent it.
    ['a docker-registry with imageManifestOnly', () => gwIm, registryBytes('ecr')],
    [
      'the embedded store',
      () => gwLocal,
      // The store is an OCI layout per repository under the daemon's root. (skopeo's oci: transport
      // cannot read it: it ignores index entries with Docker media types, which is what docker pushes.)
      async (repo, tag) => {
        const dir = path.join(gwLocal.d.root, repo);
        const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
        const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
        expect(entry, `${tag} in ${dir}/index.json`).toBeDefined();
        return readFileSync(path.join(dir, 'blobs', ...entry!.digest.split(':')));
      },
    ],
  ];

  for (const [name, gateway, upstreamBytes] of upstreams) {
    it(`in front of ${name}: the pulled images are the pushed ones, and the upstream holds docker's manifest bytes`, async () => {
      const g = gateway();
      const base = await pushBusyboxBase(dockerd, `${g.host}/base/busybox:1`);
      const app = `${g.host}/images/app:v1`;
      await dockerd.build(context(`app-${g.host.replace(/\W/g, '-')}`, base), { tags: [app], push: true });

      const pushed = new Map<string, { id: string; digest: string }>();
      for (const ref of [base, app]) {
        const digest = await pushedDigest(ref);
        pushed.set(ref, { id: (await inspectImage(ref)).id, digest });
        // What the upstream stores is what docker sent, byte for byte, and the gateway serves the same bytes.
        const repo = ref.slice(g.host.length + 1, ref.lastIndexOf(':'));
        const tag = ref.slice(ref.lastIndexOf(':') + 1);
        const stored = await upstreamBytes(repo, tag);
        expect(sha(stored)).toBe(digest);
        const through = await manifestAt(g.url, repo, tag);
        expect(through.status).toBe(200);
        expect(through.bytes.equals(stored)).toBe(true);
        expect(through.contentType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      }

      // The CLI's own registry client (not dockerd's) reads the same manifest through the gateway.
      const viaCli = JSON.parse((await dockerd.docker(['manifest', 'inspect', '--insecure', app])).stdout);
      expect(viaCli).toEqual(JSON.parse((await upstreamBytes('images/app', 'v1')).toString('utf8')));
      // A second push finds every layer there (HEAD through the gateway) and sends none again.
      expect((await dockerd.docker(['push', app])).stdout).toMatch(/Layer already exists/);

      // Forget every local image and layer, then pull by tag and by digest.
      await dockerd.pruneBuilderCache();
      for (const [ref, want] of pushed) {
        await dockerd.pull(ref);
        const got = await inspectImage(ref);
        expect(got.id).toBe(want.id);
        expect(got.repoDigests).toContain(`${ref.slice(0, ref.lastIndexOf(':'))}@${want.digest}`);
      }
      await dockerd.pruneBuilderCache();
      const byDigest = `${app.slice(0, app.lastIndexOf(':'))}@${pushed.get(app)!.digest}`;
      await dockerd.pull(byDigest);
      expect((await inspectImage(byDigest)).id).toBe(pushed.get(app)!.id);
    }, 600_000);
  }
});

describe('docker build --cache-from a cache behind the gateway', () => {
  let base: string;
  let inline: string;
  const name = 'gw-cached';

  beforeAll(async () => {
    base = await pushBusyboxBase(dockerd, `${gw.host}/base/busybox:cache`);
    inline = `${gw.host}/images/inline:v1`;
    const progress = await dockerd.build(context(name, base), { tags: [inline], buildArgs: { BUILDKIT_INLINE_CACHE: '1' }, push: true });
    // A first build really runs its steps (else a later CACHED proves nothing).
    expect(buildSteps(progress).filter((s) => s.cached)).toEqual([]);
  }, 600_000);

  /** After forgetting everything local, a build from `cacheFrom` runs none of its three steps. */
  async function fullyCached(cacheFrom: string): Promise<void> {
    await dockerd.pruneBuilderCache();
    expect(assertAllCached(await dockerd.build(context(name, base), { cacheFrom: [cacheFrom] }))).toHaveLength(3);
  }

  /** bkcache copy of the inline cache (read through the gateway) to an index-shaped cache at `dest`. */
  async function toIndexCache(dest: string): Promise<string> {
    const out = await runJson<{ manifest: { mediaType: string; digest: string } }>([
      'copy',
      '--import-cache', `type=registry,ref=${inline},registry.insecure=true`,
      '--export-cache', `type=registry,ref=${dest},registry.insecure=true,image-manifest=false`,
      '--format', 'json',
      '--progress', 'quiet',
    ]);
    expect(out.manifest.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    return out.manifest.digest;
  }

  it('the inline cache of the image pushed through the gateway: after a prune, every step CACHED', async () => {
    await fullyCached(inline);
  }, 600_000);

  it('an index cache copied through the gateway to a docker-registry: after a prune, every step CACHED', async () => {
    const cache = `${gw.host}/cache/app:index`;
    const digest = await toIndexCache(cache);
    const stored = await manifestAt(reg.url, 'gw/cache/app', 'index');
    expect(stored.status).toBe(200);
    expect(sha(stored.bytes)).toBe(digest);
    const doc = JSON.parse(stored.bytes.toString('utf8'));
    expect(doc.manifests.at(-1).mediaType).toBe(CACHE_CONFIG);
    await fullyCached(cache);
  }, 600_000);

  it('an index cache copied through the gateway to the embedded store: after a prune, every step CACHED', async () => {
    const cache = `${gwLocal.host}/cache/app:index`;
    await toIndexCache(cache);
    await fullyCached(cache);
  }, 600_000);

  it('imageManifestOnly: the upstream holds the image-manifest shape, which bkcache reads and this old BuildKit does not', async () => {
    const cache = `${gwIm.host}/cache/app:index`;
    const sent = await toIndexCache(cache);
    // The upstream holds an OCI image manifest with the cache config as config and OCI layers.
    const stored = await manifestAt(reg.url, 'ecr/cache/app', 'index');
    expect(stored.status).toBe(200);
    expect(stored.contentType).toBe('application/vnd.oci.image.manifest.v1+json');
    const doc = JSON.parse(stored.bytes.toString('utf8'));
    expect(doc.config.mediaType).toBe(CACHE_CONFIG);
    expect(doc.layers.length).toBeGreaterThanOrEqual(3);
    for (const l of doc.layers) expect(l.mediaType).toMatch(/^application\/vnd\.oci\.image\.layer\.v1\.tar/);
    expect(sha(stored.bytes)).not.toBe(sent);
    // The daemon's own import reads the stored shape through the gateway.
    const summary = await runJson<{ kind: string; records: number }>(['inspect', '--import-cache', `type=registry,ref=${cache},registry.insecure=true`, '--format', 'json']);
    expect(summary.kind).toBe('image-manifest');
    expect(summary.records).toBeGreaterThan(0);

    // dockerd 20.10's BuildKit predates the image-manifest cache: it reads the manifest, finds no
    // cache in it, and builds everything again (the build itself succeeds).
    await dockerd.pruneBuilderCache();
    const r = await dockerd.tryBuild(context(name, base), { cacheFrom: [cache] });
    expect(r.code, r.stderr).toBe(0);
    const steps = buildSteps(r.stderr);
    expect(steps).toHaveLength(3);
    expect(steps.filter((s) => s.cached)).toEqual([]);

    // What old builders can use instead: bkcache copy of the stored shape back to an index.
    const back = `${gw.host}/cache/app-from-ecr:index`;
    await runJson([
      'copy',
      '--import-cache', `type=registry,ref=${cache},registry.insecure=true`,
      '--export-cache', `type=registry,ref=${back},registry.insecure=true,image-manifest=false`,
      '--format', 'json',
      '--progress', 'quiet',
    ]);
    await fullyCached(back);
  }, 600_000);
});

describe('docker login with a bkcache token', () => {
  const tok = { a: '', b: '' };
  let configB: string;
  /** Upstream reads carry the registry's own credentials, which only the daemon is given. */
  const upstreamAuth = () => `Basic ${Buffer.from(`${mt.reg.username}:${mt.reg.password}`).toString('base64')}`;

  beforeAll(async () => {
    tok.a = await mt.mint(['--sub', 'tenant-a']);
    tok.b = await mt.mint(['--sub', 'tenant-b']);
    configB = tempDir('bkcache-gw-docker-b-');
    writeFileSync(path.join(configB, 'config.json'), '{}\n');
  }, 60_000);

  it('a wrong token cannot log in', async () => {
    const r = await dockerd.docker(['login', mt.gw.host, '-u', 'ci', '-p', tok.a.slice(0, -4) + 'AAAA'], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unauthorized|denied|401/i);
  }, 120_000);

  it('tenant A logs in, pushes and pulls its images; tenant B can neither pull nor push there', async () => {
    // As the README says: the token on stdin.
    const login = execFileSync(DOCKER_BIN, ['login', mt.gw.host, '-u', 'acme', '--password-stdin'], { input: tok.a, env: dockerd.env, encoding: 'utf8' });
    expect(login).toContain('Login Succeeded');
    // Docker's flow: a 401 on /v2/ names the realm, and the Basic credentials go to <gateway>/token.
    expect(await logged(mt.gw, { route: 'token', tenant: 'tenant-a', status: 200 })).toBe(true);
    const base = await pushBusyboxBase(dockerd, `${mt.gw.host}/cache/tenant-a/base:1`);
    const app = `${mt.gw.host}/cache/tenant-a/app:v1`;
    await dockerd.build(context('tenant-a', base), { tags: [app], push: true });
    const want = { id: (await inspectImage(app)).id, digest: await pushedDigest(app) };
    const stored = await manifestAt(mt.reg.url, 'cache/tenant-a/app', 'v1', upstreamAuth());
    expect(sha(stored.bytes)).toBe(want.digest);
    await dockerd.pruneBuilderCache();
    await dockerd.pull(app);
    expect((await inspectImage(app)).id).toBe(want.id);
    // The CLI's own registry client logs in with the same stored credentials.
    expect(JSON.parse((await dockerd.docker(['manifest', 'inspect', '--insecure', app])).stdout)).toEqual(JSON.parse(stored.bytes.toString('utf8')));

    // B logs in (its token is good) but A's repository is not B's.
    await dockerd.pruneBuilderCache();
    const loginB = await dockerd.docker(['--config', configB, 'login', mt.gw.host, '-u', 'ci', '-p', tok.b]);
    expect(loginB.stdout).toContain('Login Succeeded');
    const pull = await dockerd.docker(['--config', configB, 'pull', app], { allowFail: true });
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/denied|unauthorized|not found/i);
    // No existence oracle for docker either: A's tag and a repository that was never pushed read the same.
    const absent = `${mt.gw.host}/cache/tenant-a/never:v1`;
    const pullAbsent = await dockerd.docker(['--config', configB, 'pull', absent], { allowFail: true });
    expect(pullAbsent.stderr.replaceAll(absent.split(':v1')[0]!, 'REPO')).toBe(pull.stderr.replaceAll(app.split(':v1')[0]!, 'REPO'));
    // The CLI's own registry client with B's login: refused as well.
    const cliB = await dockerd.docker(['--config', configB, 'manifest', 'inspect', '--insecure', app], { allowFail: true });
    expect(cliB.code).not.toBe(0);
    expect((await dockerd.docker(['image', 'inspect', app], { allowFail: true })).code).not.toBe(0);

    // B's own image (FROM scratch: nothing of A's), tagged into A's repository: the push is refused.
    const ctx = path.join(tmp, 'tenant-b');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(path.join(ctx, 'b.txt'), 'tenant b was here\n');
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY b.txt /b.txt\n');
    const intoA = [app, `${mt.gw.host}/cache/tenant-a/app:b`];
    const own = `${mt.gw.host}/cache/tenant-b/app:v1`;
    await dockerd.build(ctx, { tags: [...intoA, own] });
    for (const ref of intoA) {
      const push = await dockerd.docker(['--config', configB, 'push', ref], { allowFail: true });
      expect(push.code, push.stdout).not.toBe(0);
      expect(push.stderr).toMatch(/denied|unauthorized/i);
    }
    // The control: the same image pushes fine into B's own repository.
    await dockerd.docker(['--config', configB, 'push', own]);
    const mine = await manifestAt(mt.reg.url, 'cache/tenant-b/app', 'v1', upstreamAuth());
    expect(mine.status).toBe(200);
    const layer = JSON.parse(mine.bytes.toString('utf8')).layers[0].digest as string;

    // Nothing of B's reached A's repository upstream: A's tag unchanged, no new tag, no blob.
    expect(sha((await manifestAt(mt.reg.url, 'cache/tenant-a/app', 'v1', upstreamAuth())).bytes)).toBe(want.digest);
    expect((await manifestAt(mt.reg.url, 'cache/tenant-a/app', 'b', upstreamAuth())).status).toBe(404);
    const blob = await fetch(`${mt.reg.url}/v2/cache/tenant-a/app/blobs/${layer}`, { method: 'HEAD', headers: { authorization: upstreamAuth() } });
    expect(blob.status).toBe(404);
  }, 900_000);

  it('BuildKit reads a tenant\'s cache with the docker login; another tenant\'s build gets none of it but falls back to the global tier', async () => {
    await dockerd.docker(['login', mt.gw.host, '-u', 'ci', '-p', tok.a]);
    await dockerd.docker(['--config', configB, 'login', mt.gw.host, '-u', 'ci', '-p', tok.b]);
    // A base anyone may pull (the open gateway), so both tenants build the very same steps.
    const base = await pushBusyboxBase(dockerd, `${gw.host}/base/busybox:tenants`);
    const name = 'tenant-cache';
    const inline = `${mt.gw.host}/cache/tenant-a/app:inline`;
    const first = await dockerd.build(context(name, base), { tags: [inline], buildArgs: { BUILDKIT_INLINE_CACHE: '1' }, push: true });
    expect(buildSteps(first).filter((s) => s.cached)).toEqual([]);
    // bkcache copy with the credentials `docker login` stored: one token for docker and bkcache.
    const cache = `${mt.gw.host}/cache/tenant-a/app:index`;
    const copy = (from: string, to: string, config: string) =>
      runJson(
        ['copy', '--import-cache', `type=registry,ref=${from},registry.insecure=true`, '--export-cache', `type=registry,ref=${to},registry.insecure=true,image-manifest=false`, '--format', 'json', '--progress', 'quiet'],
        { env: { DOCKER_CONFIG: config } },
      );
    await copy(inline, cache, dockerd.env.DOCKER_CONFIG!);
    await dockerd.pruneBuilderCache();
    expect(assertAllCached(await dockerd.build(context(name, base), { cacheFrom: [cache] }))).toHaveLength(3);

    // B names A's cache: BuildKit cannot read it, and B's build runs every step.
    const buildAs = (config: string, cacheFrom: string) =>
      dockerd.docker(['--config', config, 'build', '--network=host', '--progress=plain', '--cache-from', cacheFrom, context(name, base)], { allowFail: true });
    await dockerd.pruneBuilderCache();
    const denied = await buildAs(configB, cache);
    expect(denied.code, denied.stderr).toBe(0);
    // BuildKit marks the cache import failed (the gateway refused the manifest read) and goes on without it.
    expect(denied.stderr).toMatch(/importing cache manifest from [^\n]*cache\/tenant-a\/app:index\n(?:#\d+ [^\n]*\n)*#\d+ ERROR: [^\n]*(denied|insufficient_scope)/);
    expect(await logged(mt.gw, { tenant: 'tenant-b', route: 'manifest', repository: 'cache/tenant-a/app', status: 401 })).toBe(true);
    expect(buildSteps(denied.stderr)).toHaveLength(3);
    expect(buildSteps(denied.stderr).filter((s) => s.cached)).toEqual([]);

    // An operator publishes the cache to the global tier; B's own cache name falls back to it.
    const adminConfig = tempDir('bkcache-gw-docker-admin-');
    const admin = await mt.mint(['--sub', 'ops', '--admin', '--access', `${mt.reg.host}/**=pull,push`]);
    writeFileSync(path.join(adminConfig, 'config.json'), JSON.stringify({ auths: { [mt.gw.host]: { auth: Buffer.from(`ops:${admin}`).toString('base64') } } }));
    await copy(inline, `${mt.gw.host}/cache/global/app:index`, adminConfig);
    await dockerd.pruneBuilderCache();
    const fallback = await buildAs(configB, `${mt.gw.host}/cache/tenant-b/app:index`);
    expect(fallback.code, fallback.stderr).toBe(0);
    expect(assertAllCached(fallback.stderr)).toHaveLength(3);
    // Nothing was written to B's tier by reading: the fallback is read-only.
    expect((await manifestAt(mt.reg.url, 'cache/tenant-b/app', 'index', upstreamAuth())).status).toBe(404);
  }, 900_000);
});
