// A reader that closes the pipe early (`bkcache du ... | head -1`): the
// command must not die with a stack trace on EPIPE; it finishes and exits
// with its own code, so `set -o pipefail` still sees verify's 5.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN } from './harness/cli.js';
import { fixtureCopy } from '../test/cache/lifecycle/helpers.js';
import { BK } from '../test/fixtures.js';

/** Runs bkcache with its stdout a pipe whose read end is closed before the command writes. */
function runClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BKCACHE_ADDR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('stdout closed by the reader', () => {
  it('du exits 0 with nothing on stderr', async () => {
    const r = await runClosedPipe(['du', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')}`, '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('verify of a broken cache still exits 5', async () => {
    const dir = fixtureCopy('local-index-max');
    rmSync(path.join(dir, 'blobs', 'sha256', '14682e7a39f73fcc2417bc30a8a6d567ed4c1d80f19030df28a46f7238ac0842'));
    const r = await runClosedPipe(['verify', '--import-cache', `type=local,src=${dir}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(5);
  });
});
