// Gateway policies with a real BuildKit (Debian's dockerd 20.10) importing
// through the gateway:
// - two writers push the caches of two builds (one file differs) to one tag
//   at the same time, through two daemons; `docker build --cache-from` that
//   tag gives BOTH builds every step CACHED: neither writer's records were lost;
// - a cache whose last layer the registry lost is served repaired: the build
//   succeeds, the kept steps CACHED and the lost one rebuilt, no error.
//
// The dockerd helper below is private and small on purpose, as in
// lifecycle-buildkit.test.ts: it is to be replaced by the shared
// integration/harness/dockerd.ts once that lands.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJson } from './harness/cli.js';
import { insecureHosts, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

// ---- private dockerd helper (see the header) ----
interface Docker {
  run(args: string[], cwd?: string): Promise<{ code: number; out: string }>;
  stop(): Promise<void>;
}

function exec(bin: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (out += b));
    const t = setTimeout(() => c.kill('SIGKILL'), 300_000);
    c.on('error', reject);
    c.on('close', (code) => (clearTimeout(t), resolve({ code: code ?? -1, out })));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

async function startDocker(insecure: string[]): Promise<Docker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-gpd-'));
  for (const d of ['data', 'exec', 'cfg']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'cfg', 'config.json'), '{}');
  const host = `unix://${dir}/docker.sock`;
  const flags = insecure.flatMap((h) => ['--insecure-registry', h]);
  const proc: ChildProcess = spawn(
    '/usr/sbin/dockerd',
    ['--iptables=false', '--bridge=none', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '-H', host, '--pidfile', `${dir}/docker.pid`, ...flags],
    { stdio: 'ignore' },
  );
  const env = { PATH: process.env.PATH, HOME: dir, DOCKER_HOST: host, DOCKER_CONFIG: `${dir}/cfg`, DOCKER_BUILDKIT: '1', NO_COLOR: '1' };
  const run = (args: string[], cwd?: string) => exec('/usr/bin/docker', args, env, cwd); // Debian's CLI
  const stop = async () => {
    const kids: number[] = [];
    for (const task of existsSync(`/proc/${proc.pid}/task`) ? readdirSync(`/proc/${proc.pid}/task`) : []) {
      const k = readFileSync(`/proc/${proc.pid}/task/${task}/children`, 'utf8').trim();
      if (k) kids.push(...k.split(/\s+/).map(Number));
    }
    await stopPid(proc.pid!);
    for (const k of kids) await stopPid(k);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  for (let i = 0; ; i++) {
    if ((await run(['version'])).code === 0) break;
    if (i > 300 || proc.exitCode !== null) {
      await stop();
      throw new Error('dockerd did not start');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { run, stop };
}

/**
 * Steps of a plain progress log ("#N [i/n] ..."), and whether each said
 * CACHED. FROM is not a step. Independent steps (the RUN and the COPY here)
 * may start in either order, so callers compare by name.
 */
function steps(progress: string): { name: string; cached: boolean }[] {
  const byId = new Map<string, { name: string; cached: boolean }>();
  for (const line of progress.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    if (/^\[\d+\/\d+\] (?!FROM )/.test(m[2]!) && !byId.has(m[1]!)) byId.set(m[1]!, { name: m[2]!.replace(/^\[\d+\/\d+\] /, ''), cached: false });
    if (m[2] === 'CACHED' && byId.has(m[1]!)) byId.get(m[1]!)!.cached = true;
  }
  return [...byId.values()];
}
// ---- end of the private helper ----

let reg: StartedRegistry;
const gws: GatewayProcess[] = [];
let docker: Docker;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-gpb-'));
const regRef = (r: string) => `type=registry,ref=${reg.host}/${r},registry.insecure=true`;
const gwRef = (g: GatewayProcess, r: string) => `type=registry,ref=${g.host}/${r},registry.insecure=true,image-manifest=false`;
const STEPS = ['RUN mkdir -p /out && seq 1 3000 > /out/seq.txt', 'COPY a.txt /src/a.txt', 'RUN cat /src/a.txt /out/seq.txt | md5sum > /out/sum'];

async function dockerOk(args: string[], cwd?: string): Promise<string> {
  const r = await docker.run(args, cwd);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}:\n${r.out}`);
  return r.out;
}

function appContext(content: string): string {
  const dir = mkdtempSync(path.join(tmp, 'ctx-'));
  writeFileSync(path.join(dir, 'a.txt'), content);
  writeFileSync(
    path.join(dir, 'Dockerfile'),
    `FROM ${reg.host}/base:1\nRUN mkdir -p /out && seq 1 3000 > /out/seq.txt\nCOPY a.txt /src/a.txt\nRUN cat /src/a.txt /out/seq.txt | md5sum > /out/sum\n`,
  );
  return dir;
}

async function forgetLocal(): Promise<void> {
  await dockerOk(['builder', 'prune', '-af']);
  const ids = (await dockerOk(['image', 'ls', '-aq'])).split('\n').filter(Boolean);
  if (ids.length) await docker.run(['image', 'rm', '-f', ...new Set(ids)]);
}

beforeAll(async () => {
  reg = await startRegistry();
  const cfg = path.join(tmp, 'cfg.yaml');
  writeFileSync(
    cfg,
    insecureHosts(reg.host) +
      `gateway:
  listen: tcp://127.0.0.1:0
  upstream: ${reg.host}/gw
  policies:
    - { repositories: "cache/**", merge: true, repairOnRead: true }
    - { repositories: "repair/**", repairOnRead: true }
`,
  );
  gws.push(await startGatewayFromConfig(cfg), await startGatewayFromConfig(cfg));
  docker = await startDocker([reg.host, ...gws.map((g) => g.host)]);
  const base = mkdtempSync(path.join(tmp, 'base-'));
  mkdirSync(path.join(base, 'bin'));
  copyFileSync('/bin/busybox', path.join(base, 'bin', 'busybox'));
  writeFileSync(path.join(base, 'Dockerfile'), 'FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n');
  await dockerOk(['build', '--network=host', '-t', `${reg.host}/base:1`, base]);
  await dockerOk(['push', `${reg.host}/base:1`]);
  // Two builds of one Dockerfile, a.txt changed between them, each pushed with its inline cache.
  for (const [tag, content] of [['v1', 'one\n'], ['v2', 'two\n']] as const) {
    await forgetLocal();
    await dockerOk(['build', '--network=host', '--progress=plain', '--build-arg', 'BUILDKIT_INLINE_CACHE=1', '-t', `${reg.host}/app:${tag}`, appContext(content)]);
    await dockerOk(['push', `${reg.host}/app:${tag}`]);
  }
}, 600_000);

afterAll(async () => {
  await docker?.stop();
  for (const g of gws) {
    await g.d.stop();
    g.d.cleanup();
  }
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('gateway policies with a real BuildKit', () => {
  it('two writers at once to one merged tag: BuildKit finds both builds, every step CACHED', async () => {
    // The two builds' caches, pushed at the same time to one tag through two daemons (BuildKit's index shape).
    await Promise.all([
      runJson(['copy', '--format', 'json', '--import-cache', regRef('app:v1'), '--export-cache', gwRef(gws[0]!, 'cache/app:main')]),
      runJson(['copy', '--format', 'json', '--import-cache', regRef('app:v2'), '--export-cache', gwRef(gws[1]!, 'cache/app:main')]),
    ]);
    for (const [content, g] of [['one\n', gws[1]!], ['two\n', gws[0]!]] as const) {
      await forgetLocal();
      const progress = await dockerOk(['build', '--network=host', '--progress=plain', '--cache-from', `${g.host}/cache/app:main`, appContext(content)]);
      const s = steps(progress);
      expect(s.map((x) => x.name).sort()).toEqual([...STEPS].sort());
      expect(s.every((x) => x.cached), progress).toBe(true);
    }
  }, 600_000);

  it('a cache whose last layer the registry lost: served repaired, the build succeeds with the kept steps CACHED', async () => {
    const out = await runJson<{ manifest: { digest: string } }>(['copy', '--format', 'json', '--import-cache', regRef('app:v1'), '--export-cache', gwRef(gws[0]!, 'repair/app:main')]);
    const idx = await (await fetch(`${reg.url}/v2/gw/repair/app/manifests/${out.manifest.digest}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json();
    const cfgDesc = (idx.manifests as { digest: string; mediaType: string }[]).find((m) => m.mediaType.includes('cacheconfig'))!;
    const config = await (await fetch(`${reg.url}/v2/gw/repair/app/blobs/${cfgDesc.digest}`)).json();
    // The longest chain's top layer: only the last step's result names it.
    const chains = (config.records as { layers?: { layer: number }[] }[]).flatMap((r) => r.layers ?? []).map((l) => l.layer);
    // BuildKit omits `parent` when it is 0 (Go's omitempty), so absent means layer 0; -1 is no parent.
    const parentOf = (i: number): number => config.layers[i].parent ?? 0;
    const depth = (i: number): number => (parentOf(i) >= 0 ? 1 + depth(parentOf(i)) : 1);
    const top = chains.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    const victim = config.layers[top].blob as string;
    expect((await fetch(`${reg.url}/v2/gw/repair/app/blobs/${victim}`, { method: 'DELETE' })).status).toBe(202);

    await forgetLocal();
    const progress = await dockerOk(['build', '--network=host', '--progress=plain', '--cache-from', `${gws[1]!.host}/repair/app:main`, appContext('one\n')]);
    expect(progress).not.toMatch(/ERROR/);
    const cached = new Map(steps(progress).map((x) => [x.name, x.cached]));
    expect(STEPS.map((n) => cached.get(n)), progress).toEqual([true, true, false]);
  }, 600_000);
});
