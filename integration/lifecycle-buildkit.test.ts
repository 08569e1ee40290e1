// The lifecycle commands against a real BuildKit (Debian's dockerd 20.10):
// - diff of the caches of two builds of one Dockerfile with one file changed
//   names the COPY of that file as the first divergence;
// - a cache that lost a blob makes BuildKit error on that step; after
//   `verify --repair` to the same ref the build succeeds, every kept step CACHED;
// - a merged cache of both builds trimmed to about one build's size still
//   gives the newer build every step CACHED.
//
// The dockerd helper below is private and small on purpose: it is to be
// replaced by the shared integration/harness/dockerd.ts once that lands.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runJson } from './harness/cli.js';
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

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function killWait(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

async function startDocker(insecure: string): Promise<Docker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-lcd-'));
  for (const d of ['data', 'exec', 'cfg']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'cfg', 'config.json'), '{}');
  const host = `unix://${dir}/docker.sock`;
  const proc: ChildProcess = spawn(
    '/usr/sbin/dockerd',
    ['--iptables=false', '--bridge=none', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '-H', host, '--pidfile', `${dir}/docker.pid`, '--insecure-registry', insecure],
    { stdio: 'ignore' },
  );
  const env = { PATH: process.env.PATH, HOME: dir, DOCKER_HOST: host, DOCKER_CONFIG: `${dir}/cfg`, DOCKER_BUILDKIT: '1', NO_COLOR: '1' };
  const run = (args: string[], cwd?: string) => exec('/usr/bin/docker', args, env, cwd); // Debian's CLI, not /usr/local/bin's
  const stop = async () => {
    // dockerd's children (its containerd) by /proc, then dockerd, all by PID.
    const kids: number[] = [];
    for (const task of existsSync(`/proc/${proc.pid}/task`) ? readdirSync(`/proc/${proc.pid}/task`) : []) {
      const k = readFileSync(`/proc/${proc.pid}/task/${task}/children`, 'utf8').trim();
      if (k) kids.push(...k.split(/\s+/).map(Number));
    }
    await killWait(proc.pid!);
    for (const k of kids) await killWait(k);
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

/** Steps ("#N [i/n] ...") of a plain progress log, and whether each said CACHED. FROM is not a step. */
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
let docker: Docker;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-lcb-'));
const ref = (r: string) => `type=registry,ref=${reg.host}/${r},registry.insecure=true`;

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

const STEPS = ['RUN mkdir -p /out && seq 1 3000 > /out/seq.txt', 'COPY a.txt /src/a.txt', 'RUN cat /src/a.txt /out/seq.txt | md5sum > /out/sum'];

beforeAll(async () => {
  reg = await startRegistry();
  docker = await startDocker(reg.host);
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
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('lifecycle with a real BuildKit', () => {
  it('diff of the two builds: the first divergence is the COPY of the changed file', async () => {
    const d = await runJson<{ common: number; onlyB: number; divergences: { depth: number; description?: string; replaces?: { differences: { what: string }[] } }[] }>([
      'diff', '--format', 'json', '--import-cache', ref('app:v1'), '--import-cache', ref('app:v2'),
    ]);
    expect(d.common).toBeGreaterThan(0);
    expect(d.divergences).toHaveLength(1);
    const first = d.divergences[0]!;
    expect(first.description).toMatch(/COPY a\.txt \/src\/a\.txt/);
    expect(first.replaces).toBeDefined();
    expect(first.replaces!.differences.map((x) => x.what)).toContain('input');
    const text = await runCli(['diff', '--import-cache', ref('app:v1'), '--import-cache', ref('app:v2')]);
    expect(text.stdout).toMatch(/diverges at depth \d+: sha256:[0-9a-f]{64}\s+COPY a\.txt/);
  }, 120_000);

  it('a cache that lost a blob makes BuildKit error on that step; repaired in place, BuildKit builds with every kept step CACHED', async () => {
    await runJson(['copy', '--format', 'json', '--import-cache', ref('app:v1'), '--export-cache', `${ref('cache:v1')},image-manifest=false`]);
    const du = await runJson<{ results: { record: string; layers: number }[] }>(['du', '--format', 'json', '--import-cache', ref('cache:v1')]);
    // The last step's own layer: only its result names it.
    const v = await runJson<{ blobs: number }>(['verify', '--format', 'json', '--import-cache', ref('cache:v1')]);
    expect(v.blobs).toBeGreaterThan(0);
    const longest = du.results.reduce((a, b) => (b.layers > a.layers ? b : a));
    const idx = await (await fetch(`${reg.url}/v2/cache/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json();
    const layers = (idx.manifests as { digest: string; mediaType: string }[]).filter((m) => !m.mediaType.includes('cacheconfig'));
    const cfg = (idx.manifests as { digest: string; mediaType: string }[]).find((m) => m.mediaType.includes('cacheconfig'))!;
    const config = await (await fetch(`${reg.url}/v2/cache/blobs/${cfg.digest}`)).json();
    const rec = (config.records as { digest: string; layers?: { layer: number }[] }[]).find((r) => r.digest === longest.record)!;
    const victim = config.layers[rec.layers![0]!.layer].blob as string;
    expect(layers.map((l) => l.digest)).toContain(victim);
    expect((await fetch(`${reg.url}/v2/cache/blobs/${victim}`, { method: 'DELETE' })).status).toBe(202);

    const broken = await runCli(['verify', '--format', 'json', '--import-cache', ref('cache:v1')]);
    expect(broken.code).toBe(5);
    expect(JSON.parse(broken.stdout).missing).toEqual([victim]);
    // What users report (moby/buildkit#2332): BuildKit tries the lost blob and
    // errors on that step (newer releases fail the build; this 20.10 one prints
    // the error and then runs the step).
    await forgetLocal();
    const lost = await docker.run(['build', '--network=host', '--progress=plain', '--cache-from', `${reg.host}/cache:v1`, appContext('one\n')]);
    expect(lost.code !== 0 || /ERROR: .*could not fetch content descriptor .*not found/.test(lost.out), lost.out).toBe(true);

    const repaired = await runCli(['verify', '--repair', '--import-cache', ref('cache:v1'), '--export-cache', ref('cache:v1') + ',image-manifest=false']);
    expect(repaired.code, repaired.stderr).toBe(0);
    await forgetLocal();
    const progress = await dockerOk(['build', '--network=host', '--progress=plain', '--cache-from', `${reg.host}/cache:v1`, appContext('one\n')]);
    expect(progress).not.toMatch(/ERROR/);
    const s = steps(progress);
    expect(s.map((x) => x.name)).toEqual(STEPS);
    // The dropped step is a clean miss: it runs; everything kept is CACHED.
    expect(s.map((x) => x.cached)).toEqual([true, true, false]);
  }, 600_000);

  it('the merged cache of both builds, trimmed to the newer build, gives that build every step CACHED', async () => {
    await runJson(['copy', '--format', 'json', '--import-cache', ref('app:v1'), '--import-cache', ref('app:v2'), '--export-cache', `${ref('cache:both')},image-manifest=false`]);
    const before = await runJson<{ bytes: number; results: { uniqueBytes: number }[] }>(['du', '--format', 'json', '--import-cache', ref('cache:both')]);
    // v1's own results are the oldest; dropping them is enough when the limit is just under the total.
    const t = await runJson<{ droppedResults: number; after: { bytes: number } }>([
      'trim', '--format', 'json', '--max-size', String(before.bytes - 1),
      '--import-cache', ref('cache:both'), '--export-cache', `${ref('cache:trimmed')},image-manifest=false`,
    ]);
    expect(t.droppedResults).toBeGreaterThan(0);
    expect(t.after.bytes).toBeLessThan(before.bytes);
    await forgetLocal();
    const progress = await dockerOk(['build', '--network=host', '--progress=plain', '--cache-from', `${reg.host}/cache:trimmed`, appContext('two\n')]);
    const s = steps(progress);
    expect(s.map((x) => x.name)).toEqual(STEPS);
    expect(s.every((x) => x.cached), progress).toBe(true);
  }, 600_000);
});
