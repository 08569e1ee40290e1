// README examples are tests: every sh and ts block of README.md runs (or says
// why it cannot, with <!-- not-run: REASON -->), so an example cannot drift
// from what the code does. The conventions are in README "Development".
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { freePort } from './harness/registry.js';

interface Block {
  lang: string;
  code: string;
  line: number;
  /** The <!-- kind: arg --> comment just before the fence, if any. */
  mark?: { kind: string; arg: string };
}

/** The fenced blocks of a markdown text, with the HTML comment that precedes each. */
export function extractBlocks(md: string): Block[] {
  const lines = md.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, lang] = open as unknown as [string, string, string];
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() !== '```') body.push(lines[j++]!.slice(indent.length));
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const m = k >= 0 ? /^\s*<!--\s*([\w-]+):\s*(.*?)\s*-->\s*$/.exec(lines[k]!) : null;
    out.push({ lang, code: body.join('\n') + '\n', line: i + 1, mark: m ? { kind: m[1]!, arg: m[2]! } : undefined });
    i = j;
  }
  return out;
}

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const blocks = extractBlocks(README);
const runnable = blocks.filter((b) => b.lang === 'sh' || b.lang === 'ts');

let parent: string;
let work: string;
let daemon: DaemonProcess;
/** Ports and system paths in daemon examples, moved so runs cannot collide. */
const moved = new Map<string, string>();

function relocate(text: string): string {
  let t = text;
  for (const [from, to] of moved) t = t.split(from).join(to);
  return t;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    // `bkcache` on the PATH is this repository's bin, as `npm install -g` of the package gives it.
    PATH: `${path.join(work, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    HOME: path.join(work, 'home'), npm_config_offline: 'true', npm_config_update_notifier: 'false', ...extra };
  delete e.BKCACHE_ADDR;
  delete e.BKCACHE_TOKEN;
  return { ...e, ...extra };
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so whatever an example leaves running (a daemon it forgot to stop) is ended with it.
    const child = spawn(cmd, args, { cwd: work, env: opts.env ?? env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => killGroup(child.pid!), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      killGroup(child.pid!);
      resolve({ code, stdout, stderr });
    });
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

/** Commands of a block: lines joined where they end in a backslash; comments and blanks dropped. */
function commands(code: string): string[] {
  return code
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

beforeAll(async () => {
  // A temp directory beside a link to ../shared, so "../shared/fixtures" reads as it does from a clone,
  // holding this repository as the package `bkcache` (its bin is what npx runs; offline, it never downloads)
  // and its build as ./dist, as in a clone.
  parent = mkdtempSync(path.join(os.tmpdir(), 'bkcache-readme-'));
  symlinkSync(path.resolve(ROOT, '../shared'), path.join(parent, 'shared'));
  work = path.join(parent, 'work');
  mkdirSync(path.join(work, 'node_modules', '.bin'), { recursive: true });
  mkdirSync(path.join(work, 'home'));
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'readme-examples', private: true, type: 'module' }));
  symlinkSync(ROOT, path.join(work, 'node_modules', 'bkcache'));
  symlinkSync(BIN, path.join(work, 'node_modules', '.bin', 'bkcache'));
  symlinkSync(path.join(ROOT, 'dist'), path.join(work, 'dist'));
  for (const p of ['/run/bkcache', '/var/lib/bkcache', '/etc/bkcache']) {
    const to = path.join(work, p.slice(1));
    mkdirSync(to, { recursive: true });
    moved.set(p, to);
  }
  for (const b of blocks.filter((x) => x.lang === 'sh' && x.mark?.kind === 'run')) {
    for (const [, port] of b.code.matchAll(/127\.0\.0\.1:(\d+)/g)) if (!moved.has(`127.0.0.1:${port}`)) moved.set(`127.0.0.1:${port}`, `127.0.0.1:${await freePort()}`);
  }
  for (const b of blocks.filter((x) => x.mark?.kind === 'file')) {
    for (const [, port] of b.code.matchAll(/127\.0\.0\.1:(\d+)/g)) if (!moved.has(`127.0.0.1:${port}`)) moved.set(`127.0.0.1:${port}`, `127.0.0.1:${await freePort()}`);
    writeFileSync(path.join(work, b.mark!.arg), relocate(b.code));
  }
  daemon = await startDaemon();
});

afterAll(async () => {
  await daemon?.stop();
  daemon?.cleanup();
  if (parent) rmSync(parent, { recursive: true, force: true });
});

describe('README.md', () => {
  it('every sh and ts block is run, or marked not-run with a reason', () => {
    expect(runnable.length).toBeGreaterThan(5);
    for (const b of runnable) {
      const where = `README.md:${b.line}`;
      if (b.mark?.kind === 'not-run') expect(b.mark.arg.length, `${where}: not-run needs a reason`).toBeGreaterThan(3);
      else expect([undefined, 'run'], `${where}: unknown mark ${b.mark?.kind}`).toContain(b.mark?.kind);
      if (b.mark?.kind === 'run') expect(b.mark.arg, `${where}`).toBe('daemon');
    }
  });

  for (const b of runnable.filter((x) => x.mark?.kind !== 'not-run')) {
    const first = b.code.split('\n').find((l) => l.trim() && !l.trim().startsWith('//'))!;
    it(`line ${b.line} (${b.lang}${b.mark ? `, ${b.mark.kind}: ${b.mark.arg}` : ''}): ${first.slice(0, 60)}`, async () => {
      if (b.lang === 'ts') return runTs(b);
      if (b.mark?.kind === 'run') return runDaemons(b);
      if (/^\$ /m.test(b.code)) return runTranscript(b);
      const r = await run('bash', ['-euo', 'pipefail', '-c', b.code]);
      expect(r.code, `README.md:${b.line} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    }, 180_000);
  }
});

/** "$ cmd" lines run; the lines after each are its expected stdout, where … matches anything. */
async function runTranscript(b: Block): Promise<void> {
  const steps: { cmd: string; expected: string[] }[] = [];
  for (const line of b.code.replace(/\n$/, '').split('\n')) {
    if (line.startsWith('$ ')) steps.push({ cmd: line.slice(2), expected: [] });
    else steps.at(-1)?.expected.push(line);
  }
  for (const s of steps) {
    const r = await run('bash', ['-euo', 'pipefail', '-c', s.cmd]);
    expect(r.code, `README.md:${b.line}: ${s.cmd}\n${r.stderr}`).toBe(0);
    const pattern = s.expected.map((l) => l.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*?')).join('\n');
    expect(r.stdout.replace(/\n$/, '')).toMatch(new RegExp(`^${pattern}$`));
  }
}

/** Each command is a daemon: it must start listening, then exit 0 on SIGTERM. */
async function runDaemons(b: Block): Promise<void> {
  for (const cmd of commands(relocate(b.code))) {
    const child = spawn('bash', ['-c', `exec ${cmd}`], { cwd: work, env: env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const listening = new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (c) => {
        stderr += c;
        if (/"msg":"listening"/.test(stderr)) resolve();
      });
      void exited.then((code) => reject(new Error(`README.md:${b.line}: ${cmd}\nexited ${code} before listening:\n${stderr}`)));
    });
    child.stdout.resume();
    const guard = setTimeout(() => killGroup(child.pid!), 60_000);
    try {
      await listening;
    } finally {
      child.kill('SIGTERM');
    }
    const code = await exited;
    clearTimeout(guard);
    killGroup(child.pid!);
    expect(code, `README.md:${b.line}: ${cmd}\n${stderr}`).toBe(0);
  }
}

/** Type-checks the block against the built package, then runs it against the test daemon. */
async function runTs(b: Block): Promise<void> {
  const dir = path.join(work, `ts-${b.line}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'example.ts'), b.code);
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: true,
        outDir: 'out',
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules/@types')],
      },
      files: ['example.ts'],
    }),
  );
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: work, stdio: 'pipe' });
  } catch (err) {
    throw new Error(`README.md:${b.line}: the TypeScript example does not type-check:\n${(err as { stdout?: Buffer }).stdout?.toString()}`);
  }
  const r = await run(process.execPath, [path.join(dir, 'out', 'example.js')], { env: env({ BKCACHE_ADDR: daemon.addr }) });
  expect(r.code, `README.md:${b.line}: the TypeScript example failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64} /m);
  expect(r.stdout).toContain('hit type=local,src=app-cache (1 missed)');
  expect(r.stdout).toContain('a layer tarball');
}
