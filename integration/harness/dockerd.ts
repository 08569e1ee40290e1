// Starts Debian's dockerd (20.10, BuildKit built in) for one test run and
// drives it with Debian's own docker CLI, so tests can watch a real BuildKit
// write inline caches and consume the caches bkcache writes.
//
// - /usr/sbin/dockerd with a temp data root, exec root and socket; no
//   iptables, no bridge (builds use --network=host). It reads its insecure
//   registries only at start, so start the registries first and pass them.
// - /usr/bin/docker, never the newer CLI some machines have in
//   /usr/local/bin (that one wants buildx for `docker build`).
// - stop() kills dockerd and the containerd it started, by PID, and removes
//   the temp directories.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DOCKERD_BIN = '/usr/sbin/dockerd';
export const DOCKER_BIN = '/usr/bin/docker';
export const BUSYBOX_BIN = '/bin/busybox';

export interface StartDockerdOptions {
  /** host:port of registries to reach over plain HTTP (the test registry, a gateway, …). */
  insecureRegistries?: string[];
  timeoutMs?: number;
}

export interface BuildOptions {
  /** -t; pushed too when `push` is set. */
  tags?: string[];
  /** --cache-from refs (BuildKit reads inline caches and registry caches from them). */
  cacheFrom?: string[];
  /** --build-arg KEY=VALUE, e.g. { BUILDKIT_INLINE_CACHE: '1' }. */
  buildArgs?: Record<string, string>;
  /** docker push every tag after the build. */
  push?: boolean;
  /** Dockerfile path relative to the context (default Dockerfile). */
  file?: string;
}

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Dockerd {
  /** unix:///…/docker.sock */
  host: string;
  /** The environment every docker CLI call gets (DOCKER_HOST, DOCKER_CONFIG, DOCKER_BUILDKIT). */
  env: Record<string, string>;
  pid: number;
  /** Runs /usr/bin/docker; throws with its output unless it exits 0 (or `allowFail`). */
  docker(args: string[], opts?: { cwd?: string; allowFail?: boolean; timeoutMs?: number }): Promise<DockerResult>;
  /** `docker build --network=host --progress=plain`; returns the plain progress text (stderr). */
  build(contextDir: string, opts?: BuildOptions): Promise<string>;
  /**
   * The same build for a test that expects it may fail: never throws on a
   * non-zero exit and returns the exit code with both outputs. Pushes nothing.
   */
  tryBuild(contextDir: string, opts?: Omit<BuildOptions, 'push'>): Promise<DockerResult>;
  push(ref: string): Promise<void>;
  pull(ref: string): Promise<void>;
  /** Forgets every build cache record and local image, so the next build can only use remote caches. */
  pruneBuilderCache(): Promise<void>;
  /** dockerd's own output so far, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

/** One build step of the plain progress output: "#7 [2/3] RUN …" and whether it said CACHED. */
export interface BuildStep {
  id: string;
  /** As printed: "[2/3] RUN …" (or "[stage 2/3] RUN …"). */
  name: string;
  /** The Dockerfile instruction alone: "RUN …". */
  instruction: string;
  /** Its n in "[n/m]": the Dockerfile order, which the print order need not be (independent steps run in parallel). */
  step: number;
  cached: boolean;
}

/**
 * The Dockerfile steps ("[n/m] …" vertices) of a plain progress log and
 * whether each was CACHED. Internal vertices (load metadata, context
 * transfer, exporting) are not steps, and neither is FROM: BuildKit resolves
 * a base image and never prints CACHED for it.
 */
export function buildSteps(progress: string): BuildStep[] {
  const steps = new Map<string, BuildStep>();
  for (const line of progress.split('\n')) {
    const m = /^#(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, rest] = m as unknown as [string, string, string];
    const named = /^\[(?:[\w.-]+ )?(\d+)\/\d+\] (?!FROM )/.exec(rest);
    if (named && !steps.has(id!)) steps.set(id!, { id: id!, name: rest!, instruction: rest!.slice(named[0].length), step: Number(named[1]), cached: false });
    const s = steps.get(id!);
    if (s && rest === 'CACHED') s.cached = true;
  }
  return [...steps.values()];
}

/** Whether the build had steps and every one was CACHED. */
export function allCached(progress: string): boolean {
  const steps = buildSteps(progress);
  return steps.length > 0 && steps.every((s) => s.cached);
}

/** Throws, listing the steps that ran, unless the build had steps and every one was CACHED. */
export function assertAllCached(progress: string): BuildStep[] {
  const steps = buildSteps(progress);
  const ran = steps.filter((s) => !s.cached);
  if (steps.length === 0 || ran.length > 0) {
    throw new Error(
      `expected every build step CACHED; ${steps.length === 0 ? 'found no steps' : `these ran: ${ran.map((s) => s.name).join('; ')}`}\n--- progress ---\n${progress}`,
    );
  }
  return steps;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv, cwd: string | undefined, timeoutMs: number): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The PIDs of a process's children (Linux /proc), e.g. the containerd dockerd started. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (kids) out.push(...kids.split(/\s+/).map(Number));
    }
  } catch {
    // gone already
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killAndWait(pid: number, timeoutMs: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited in between
    }
  }
}

/** The `docker build` arguments for a context and options (push is done apart). */
function buildArgs(contextDir: string, o: BuildOptions): string[] {
  const a = ['build', '--network=host', '--progress=plain'];
  for (const t of o.tags ?? []) a.push('-t', t);
  for (const c of o.cacheFrom ?? []) a.push('--cache-from', c);
  for (const [k, v] of Object.entries(o.buildArgs ?? {})) a.push('--build-arg', `${k}=${v}`);
  if (o.file) a.push('-f', path.join(contextDir, o.file));
  a.push(contextDir);
  return a;
}

export async function startDockerd(opts: StartDockerdOptions = {}): Promise<Dockerd> {
  for (const bin of [DOCKERD_BIN, DOCKER_BIN]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install Debian's docker.io (integration/global-setup.ts does)`);
  }
  // /tmp paths keep the socket path short (unix sockets allow ~107 bytes).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-dockerd-'));
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'exec');
  const config = path.join(dir, 'config');
  for (const d of [dataRoot, execRoot, config]) mkdirSync(d, { recursive: true });
  const sock = path.join(dir, 'docker.sock');
  const host = `unix://${sock}`;
  const args = [
    '--iptables=false',
    '--bridge=none',
    '--data-root',
    dataRoot,
    '--exec-root',
    execRoot,
    '-H',
    host,
    '--pidfile',
    path.join(dir, 'docker.pid'),
    ...(opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
  ];
  let output = '';
  const proc: ChildProcess = spawn(DOCKERD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOCKER_CONFIG: config } });
  const collect = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-50_000);
    if (process.env.BKCACHE_DOCKERD_LOGS) process.stderr.write(b);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const pid = proc.pid!;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    DOCKER_HOST: host,
    DOCKER_CONFIG: config,
    DOCKER_BUILDKIT: '1',
    // No colours or cursor tricks in the progress text we parse.
    NO_COLOR: '1',
  };
  writeFileSync(path.join(config, 'config.json'), '{}\n');

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Collected before dockerd goes: it may exit before its children do.
    const kids = childPids(pid);
    await killAndWait(pid, 20_000);
    for (const k of kids) await killAndWait(k, 10_000);
    // Containers and mounts under the exec/data roots are gone with their processes.
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };

  const docker: Dockerd['docker'] = async (dargs, o = {}) => {
    const r = await run(DOCKER_BIN, dargs, env, o.cwd, o.timeoutMs ?? 300_000);
    if (r.code !== 0 && !o.allowFail) {
      throw new Error(`docker ${dargs.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  };

  // Ready when the API answers.
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`dockerd exited ${proc.exitCode}:\n${output}`);
      if (existsSync(sock) && (await run(DOCKER_BIN, ['version', '--format', '{{.Server.Version}}'], env, undefined, 10_000)).code === 0) break;
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within ${opts.timeoutMs ?? 60_000} ms:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    host,
    env,
    pid,
    docker,
    async build(contextDir, o = {}) {
      const r = await docker(buildArgs(contextDir, o));
      if (o.push) for (const t of o.tags ?? []) await docker(['push', t]);
      return r.stderr;
    },
    tryBuild: (contextDir, o = {}) => docker(buildArgs(contextDir, o), { allowFail: true }),
    async push(ref) {
      await docker(['push', ref]);
    },
    async pull(ref) {
      await docker(['pull', ref]);
    },
    async pruneBuilderCache() {
      await docker(['builder', 'prune', '-af']);
      // Images hold their layers (and an inline cache) locally: remove them too,
      // so a later build has nothing but the remote cache to go on.
      const ids = (await docker(['image', 'ls', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker(['image', 'rm', '-f', ...new Set(ids)]);
    },
    logs: () => output,
    stop,
  };
}

/**
 * A base image for test builds: `FROM scratch` with Debian's static busybox
 * as /bin/busybox and its applets linked in /bin, built and pushed as `ref`
 * (a ref in a registry the daemon was told is insecure).
 */
export async function pushBusyboxBase(d: Dockerd, ref: string): Promise<string> {
  const ctx = mkdtempSync(path.join(os.tmpdir(), 'bkcache-busybox-'));
  try {
    mkdirSync(path.join(ctx, 'bin'));
    copyFileSync(BUSYBOX_BIN, path.join(ctx, 'bin', 'busybox'));
    writeFileSync(
      path.join(ctx, 'Dockerfile'),
      'FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n',
    );
    await d.build(ctx, { tags: [ref], push: true });
    return ref;
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/**
 * Writes (afresh) a build context at `dir` whose steps BuildKit can only skip
 * with a cache: RUN, COPY, RUN on `base`, all naming `name` so that contexts
 * with other names share no step. Returns `dir`.
 */
export function stepsContext(dir: string, name: string, base: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'input.txt'), `${name}\n`);
  writeFileSync(
    path.join(dir, 'Dockerfile'),
    `FROM ${base}\nRUN echo ${name} > /step1\nCOPY input.txt /input.txt\nRUN cat /step1 /input.txt > /step2 && echo ${name}-done >> /step2\n`,
  );
  return dir;
}

/** The steps of changedFileContext(), in Dockerfile order. */
export const CHANGED_FILE_STEPS = ['RUN mkdir -p /out && seq 1 3000 > /out/seq.txt', 'COPY a.txt /src/a.txt', 'RUN cat /src/a.txt /out/seq.txt | md5sum > /out/sum'];

/**
 * A new build context under `parent` on `base` whose a.txt holds `content`:
 * two builds with different contents share the first RUN and differ from the
 * COPY on, which is what the diff, repair and merge tests look for.
 */
export function changedFileContext(parent: string, base: string, content: string): string {
  const dir = mkdtempSync(path.join(parent, 'ctx-'));
  writeFileSync(path.join(dir, 'a.txt'), content);
  writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${base}\n${CHANGED_FILE_STEPS.join('\n')}\n`);
  return dir;
}

/**
 * Pushes the busybox base to `registry`/base:1, then builds changedFileContext()
 * twice from a pruned builder, a.txt "one" and then "two", and pushes each with
 * its inline cache as `registry`/app:v1 and app:v2.
 */
export async function pushChangedFileApps(d: Dockerd, parent: string, registry: string): Promise<void> {
  await pushBusyboxBase(d, `${registry}/base:1`);
  for (const [tag, content] of [['v1', 'one\n'], ['v2', 'two\n']] as const) {
    await d.pruneBuilderCache();
    await d.build(changedFileContext(parent, `${registry}/base:1`, content), { tags: [`${registry}/app:${tag}`], buildArgs: { BUILDKIT_INLINE_CACHE: '1' }, push: true });
  }
}

/** A build's steps in Dockerfile order (BuildKit prints independent steps in either order). */
export const stepsInOrder = (progress: string): BuildStep[] => buildSteps(progress).sort((a, b) => a.step - b.step);
