// Benchmark: how fast the CLI starts. `bkcache --help` should start within
// 1.5x of a bare `node -e 0`, and `inspect` of a local cache within 2.5x:
// commands load gRPC, protobuf and HTTP modules only when they need them
// (src/cli/commands.ts). Each command runs BKCACHE_BENCH_CLI_RUNS times
// (default 15), interleaved so machine load hits all alike; the median counts.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../../src/cli/main.js');
const FIXTURE = path.resolve(here, '../../../../shared/fixtures/buildkit-v0.12.5/registry-index-oci-max');

function timeOnce(args: string[]): number {
  const t = process.hrtime.bigint();
  execFileSync(process.execPath, args, { stdio: 'ignore', env: { ...process.env, BKCACHE_ADDR: '' } });
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function cliBench(): void {
  const runs = Number(process.env.BKCACHE_BENCH_CLI_RUNS ?? 15);
  const cases: Record<string, string[]> = {
    'node -e 0': ['-e', '0'],
    'bkcache --help': [BIN, '--help'],
    'bkcache inspect (local)': [BIN, 'inspect', '--import-cache', `type=local,src=${FIXTURE}`],
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const args of Object.values(cases)) timeOnce(args); // warm the file cache
  for (let i = 0; i < runs; i++) for (const [k, args] of Object.entries(cases)) times[k]!.push(timeOnce(args));
  const base = median(times['node -e 0']!);
  console.log(`cli: start-up, median of ${runs} runs (targets: --help within 1.5x of node -e 0, inspect of a local cache within 2.5x)`);
  const targets: Record<string, number> = { 'bkcache --help': 1.5, 'bkcache inspect (local)': 2.5 };
  for (const [k, ts] of Object.entries(times)) {
    const m = median(ts);
    const target = targets[k];
    const verdict = target === undefined ? '' : m / base <= target ? 'target met' : 'TARGET MISSED';
    console.log(`  ${k.padEnd(26)} ${m.toFixed(0).padStart(5)} ms  ${(m / base).toFixed(2)}x  ${verdict}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) cliBench();
