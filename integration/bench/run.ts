// `npm run bench`: runs every benchmark, each in its own process, and prints
// its figures. Benchmarks report; they do not fail on targets (timed tests
// would be flaky on shared machines), but each line says whether the target
// was met.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBench } from './cli.js';
import { gatewayBench } from './gateway.js';
import { grpcBench } from './grpc.js';
import { localBench } from './local.js';
import { registryBench } from './registry.js';
import { lifecycleBench } from './lifecycle.js';
import { uploadHashBench } from './upload-hash.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function run(script: string, args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, [path.join(here, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

function graphBench(): void {
  console.log('graph: decode + normalize + marshal (target: 20 000 records < 2000 ms, peak RSS < 500 MiB)');
  for (const size of [1000, 5000, 20000]) {
    const r = run('graph.js', [String(size)]);
    const ok = size === 20000 ? (r.ms! < 2000 && r.peakRssMiB! < 500 ? 'target met' : 'TARGET MISSED') : '';
    console.log(
      `  ${String(size).padStart(6)} records  ${String(r.layers).padStart(6)} layers  ${(r.configBytes! / 1024).toFixed(0).padStart(6)} KiB config  ${String(r.ms).padStart(6)} ms  peak RSS ${r.peakRssMiB} MiB  ${ok}`,
    );
  }
}

const benches: Record<string, () => void | Promise<void>> = { cli: cliBench, graph: graphBench, registry: registryBench, grpc: grpcBench, local: localBench, lifecycle: lifecycleBench, gateway: gatewayBench, 'upload-hash': uploadHashBench };
const wanted = process.argv.slice(2);
for (const [name, fn] of Object.entries(benches)) if (wanted.length === 0 || wanted.includes(name)) await fn();
