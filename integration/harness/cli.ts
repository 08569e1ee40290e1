// Runs the built `bkcache` binary as a real process.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'dist/src/cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run "npm run build" first (npm test does)`);
  return new Promise((resolve, reject) => {
    // BKCACHE_ADDR in the caller's environment would send in-process runs to a daemon: tests say so explicitly.
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BKCACHE_ADDR: '', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Runs and parses the single JSON line a --format json command prints; fails loudly otherwise. */
export async function runJson<T = Record<string, unknown>>(args: string[], opts?: { env?: Record<string, string> }): Promise<T> {
  const r = await runCli(args, opts);
  if (r.code !== 0) throw new Error(`bkcache ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
