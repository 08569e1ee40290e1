// Benchmarks of the lifecycle tools.
// - verify: a cache naming 10 000 blobs in a real local registry, checked by
//   the CLI (`bkcache verify`, a HEAD per blob, 16 in flight). Target: under
//   10 s on the registry as it is deployed: "pushed", configured as Debian
//   packages it (and as distribution's example configuration has it:
//   in-memory descriptor cache) and the cache exported for real, every layer
//   uploaded through the API. Also "cold": layers seeded on disk and no blob
//   descriptor cache, every HEAD a filesystem lookup; there the registry's own
//   loop takes about 10 s, so verify is reported against that pace. Verify
//   runs three times, the target judged on the median; before the first run
//   and after each, the registry's own pace: the same HEADs from a
//   bare loop on kept-alive connections (the floor for any client: distribution
//   2.8 builds and compiles its whole route table again for every request, in
//   App.context -> v2.NewURLBuilderFromRequest, 42-46% of its CPU per HEAD in a
//   pprof profile from its debug server). Each line
//   has its wall time, the CPU seconds of the client and of the registry
//   process (/proc/PID/stat), the CPU stolen by the hypervisor and that of
//   all processes on the VM (/proc/stat), and for verify the requests and connections
//   it made (request-stats.ts), so a shared machine's load can be told apart
//   from our own cost. BKCACHE_BENCH_VERIFY_SCENARIO=cold|pushed runs one (none: neither);
//   BKCACHE_BENCH_VERIFY_SWEEP=4,8,16 also runs verify at those concurrencies.
// - trim (plan, marshal and the config bytes of the kept part: all it computes
//   before it writes), du and diff on caches of the
//   graph bench's family at 1 000 to 20 000 records (five sizes), each size in
//   five processes of its own, every sample over 20 000 records' worth of distinct caches.
//   Targets: 20 000 records under 2 s each, and near-linear (see NEAR_LINEAR).
//
//   node dist/integration/bench/lifecycle.js 20000   # one size, JSON
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Agent } from 'undici';
import { decodeCacheConfig } from '../../src/cache/config.js';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { diffGraphs } from '../../src/cache/lifecycle/diff.js';
import { diskUsage } from '../../src/cache/lifecycle/du.js';
import { planTrim } from '../../src/cache/lifecycle/trim.js';
import { exportGraph } from '../../src/cache/operations.js';
import { parseConfig } from '../../src/cache/parse.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { startRegistry, type StartedRegistry } from '../harness/registry.js';
import { generate } from './graph.js';
import { cpuSeconds, machineDelta, machineTimes } from './proc.js';
import type { RequestStats } from './request-stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');
const load = () => `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;

/** Samples per operation in one process; each runs the operation over 20 000 records' worth of caches. */
const SAMPLES = 9;
/** Sizes of the scaling line, and how many processes measure each (interleaved, so the machine's load spreads over all sizes). */
const SIZES = [1000, 2000, 5000, 10_000, 20_000];
const ROUNDS = 5;
/**
 * The near-linear line. For each operation, the per-record cost at 20 000
 * records over that at 1 000 (1 = linear), read off a line fitted through all
 * five sizes (least squares in log-log, so one noisy size cannot decide it),
 * is at most 2x, or, on a machine where even a linear pass grows more than
 * that, at most LOG_FACTOR times what `walk`, a plain linear pass over the
 * same records measured the same way, gives: no worse than n log n (what the
 * sorts of BuildKit's record and layer order add) over a linear pass.
 *
 * Why a linear pass is not flat per record either: a sample at a small size
 * runs the operation once on each of 20 000 / size distinct caches of that
 * size, so every sample, at every size, does 20 000 records' work over 20 000
 * records' memory (repeating one small cache would measure it hot in the CPU
 * caches). What still differs is the size of one problem: at 1 000 records
 * one fits in the CPU's L2 cache and V8's young generation, at 20 000 it fits
 * in neither, and the walk's per-record ratio measures 1.2x to 2.3x on the
 * 2-core VMs this runs on.
 */
const NEAR_LINEAR = 2;
const LOG_FACTOR = Math.log(20_000) / Math.log(1000);

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

/**
 * Median of SAMPLES samples of `fn` over every input, in CPU ms per input (CPU
 * time, so the time this process waits for a core on a loaded machine does
 * not count). The median, not the best: at 20 000 records a sample is one run
 * and a major GC lands in some samples and not others, while at 1 000 every
 * sample has its share of them; the best sample would favour the big size.
 */
function median<I, T>(inputs: I[], fn: (input: I) => T): { value: T; ms: number } {
  // A full collection first (the child runs with --expose-gc), so the garbage the previous operation left is not
  // collected, on V8's background threads and so in this process's CPU time, during this one's samples.
  (globalThis as { gc?: () => void }).gc?.();
  // Warm-up, not timed: one whole sample, so at small sizes (many inputs) the code is optimized before timing starts.
  let value = fn(inputs[0]!);
  for (const input of inputs) value = fn(input);
  const ms: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = cpuMs();
    for (const input of inputs) value = fn(input);
    ms.push((cpuMs() - t0) / inputs.length);
  }
  return { value, ms: mid(ms) };
}

const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** A linear pass: each record into a map, each link's source looked up, each layer into a map. */
function walk(g: CacheGraph): number {
  const seen = new Map<CacheNode, number>();
  const blobs = new Map<string, number>();
  let found = 0;
  for (const n of g.nodes) seen.set(n, n.links.length);
  for (const n of g.nodes) {
    for (const m of n.links) for (const l of m.values()) if (seen.has(l.src)) found++;
    for (const l of n.result?.layers ?? []) blobs.set(l.digest, l.size);
  }
  return found + blobs.size;
}

interface OpsRow {
  records: number;
  trimMs: number;
  duMs: number;
  diffMs: number;
  walkMs: number;
  dropped: number;
  divergences: number;
}

/**
 * One size: 20 000 / records pairs of distinct graphs, each a generated cache
 * A and B with one record in the middle changed (its dependents diverge).
 * Each graph is decoded from the config's bytes with layer descriptors of its
 * own, as a cache read from a store has: graphs sharing descriptor objects
 * would read the same few in every small cache, hot in the CPU's caches.
 */
export function measureOps(records: number): OpsRow {
  const { bytes, descriptors } = generate(records);
  const loadGraph = (changed: boolean) => {
    const cc = decodeCacheConfig(bytes);
    if (changed) cc.records[Math.floor(cc.records.length / 2)]!.digest = sha('changed');
    const g = new CacheGraph();
    parseConfig(g, cc, new Map([...descriptors].map(([k, d]) => [k, structuredClone(d)])));
    return g;
  };
  const pairs = Array.from({ length: Math.max(1, Math.round(20_000 / records)) }, () => ({ a: loadGraph(false), b: loadGraph(true) }));
  // Keep about half the blobs: the generator's layers are shared, so this drops many results.
  let total = 0;
  for (const d of descriptors.values()) total += d.size;
  const trim = median(pairs, ({ a }) => {
    const plan = planTrim(a, { maxSize: Math.floor(total / 2) });
    plan.graph.marshal().flat.encode();
    return plan.dropped.length;
  });
  const du = median(pairs, ({ a }) => diskUsage(a));
  const diff = median(pairs, ({ a, b }) => diffGraphs(a, b));
  const ref = median(pairs, ({ a, b }) => walk(a) + walk(b));
  const r2 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    records,
    trimMs: r2(trim.ms),
    duMs: r2(du.ms),
    diffMs: r2(diff.ms),
    walkMs: r2(ref.ms),
    dropped: trim.value,
    divergences: diff.value.divergences.length,
  };
}

function runSize(size: number): OpsRow {
  const out = execFileSync(process.execPath, ['--expose-gc', path.join(here, 'lifecycle.js'), String(size)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}


interface Measured {
  ms: number;
  registryCpuS: number;
  clientCpuS: number;
  /** Share of the machine's CPU time the hypervisor stole during the run. */
  steal: number;
  /** CPU seconds all processes on this VM ran meanwhile (client and registry included), from /proc/stat. */
  machineCpuS: number;
}

/** Wall time and registry CPU of `fn`; client CPU is this process's unless `fn` reports a child's. */
async function measured(reg: StartedRegistry, fn: () => Promise<number | void>): Promise<Measured> {
  const m0 = machineTimes();
  const r0 = cpuSeconds(reg.pid);
  const c0 = cpuMs();
  const t0 = process.hrtime.bigint();
  const child = await fn();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const registryCpuS = cpuSeconds(reg.pid) - r0;
  const clientCpuS = typeof child === 'number' ? child : (cpuMs() - c0) / 1000;
  const { stealShare, busyS } = machineDelta(m0, machineTimes());
  return { ms, registryCpuS, clientCpuS, steal: stealShare, machineCpuS: busyS };
}

/** HEAD of every digest, `inFlight` at a time, from a bare undici pool: no auth, retries or checks of ours. */
async function bareHeads(reg: StartedRegistry, digests: string[], inFlight: number, keepAlive: boolean): Promise<void> {
  const agent = new Agent({ connections: inFlight, keepAliveTimeout: 30_000 });
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < digests.length) {
          const res = await agent.request({
            origin: reg.url,
            path: `/v2/bench/verify/blobs/${digests[next++]}`,
            method: 'HEAD',
            ...(keepAlive ? { reset: false } : {}),
          });
          await res.body.dump();
          if (res.statusCode !== 200) throw new Error(`HEAD answered ${res.statusCode}`);
        }
      }),
    );
  } finally {
    await agent.close();
  }
}

const BLOBS = 10_000;
const IN_FLIGHT = 16;
/** Verify runs per scenario, each between two bare loops; the target is judged on their median. */
const VERIFY_RUNS = 3;

/** 2 000 records, each a result of 5 layers of its own: 10 000 distinct blobs, and their bytes. */
function verifyCache(): { g: CacheGraph; content: Map<string, Buffer> } {
  const g = new CacheGraph();
  const content = new Map<string, Buffer>();
  let prev: CacheNode | undefined;
  for (let i = 0; i < BLOBS / 5; i++) {
    const n = g.add(sha(`verify-rec-${i}`)) as CacheNode;
    if (prev) n.linkFrom(prev, 0);
    const layers: Descriptor[] = [];
    for (let k = 0; k < 5; k++) {
      const body = Buffer.from(`verify-layer-${i}-${k}`);
      const d: Descriptor = {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: sha(body.toString()),
        size: body.length,
        annotations: { 'containerd.io/uncompressed': sha(`diff-${i}-${k}`) },
      };
      content.set(d.digest, body);
      layers.push(d);
    }
    n.addResult('2026-01-01T00:00:00Z', layers);
    prev = n;
  }
  return { g, content };
}

/** `bkcache verify` as a user runs it, in a child process (with request-stats.ts loaded); client CPU is the child's. */
async function runVerify(reg: StartedRegistry, ref: string, inFlight: number, statsFile: string) {
  const cli = path.join(here, '../../src/cli/main.js');
  let out: { ok: boolean; blobs: number } | undefined;
  const m = await measured(reg, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', pathToFileURL(path.join(here, 'request-stats.js')).href, cli, 'verify', '--format', 'json', '--concurrency', String(inFlight), '--import-cache', `type=registry,ref=${ref},registry.insecure=true`],
      { encoding: 'utf8', env: { ...process.env, BKCACHE_BENCH_STATS: statsFile } },
    );
    out = JSON.parse(stdout);
    return (JSON.parse(readFileSync(statsFile, 'utf8')) as RequestStats).cpuS;
  });
  return { m, out: out!, stats: JSON.parse(readFileSync(statsFile, 'utf8')) as RequestStats };
}

const line = (m: Measured, heads: number) =>
  `${Math.round(m.ms)} ms wall; client ${m.clientCpuS.toFixed(1)} s CPU; registry ${m.registryCpuS.toFixed(1)} s CPU (${((m.registryCpuS / heads) * 1000).toFixed(2)} ms per HEAD); ` +
  `all processes ${m.machineCpuS.toFixed(1)} s CPU; steal ${(m.steal * 100).toFixed(0)}%`;

/**
 * One scenario of the verify bench:
 * - cold: the layers written straight into the registry's storage, and a
 *   registry without a blob descriptor cache, so every HEAD stats the
 *   filesystem (a registry just restarted, or configured without the cache);
 * - pushed: the registry as Debian packages it (in-memory blob descriptor
 *   cache), and the cache exported for real: every layer uploaded through
 *   the registry API, which fills the descriptor cache as a push does.
 */
async function verifyScenario(name: 'cold' | 'pushed', sweep: number[]): Promise<void> {
  const pushed = name === 'pushed';
  const reg = await startRegistry({ descriptorCache: pushed });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-bench-verify-'));
  try {
    const { g, content } = verifyCache();
    const ref = `${reg.host}/bench/verify:latest`;
    const t0 = Date.now();
    // cold: layers straight into storage; the export then finds each with a HEAD and pushes the config and manifest.
    if (!pushed) reg.seedBlobs('bench/verify', content);
    await exportGraph(
      g,
      { fetch: async (d) => Readable.from([content.get(d.digest)!]) },
      { type: 'registry', attrs: { ref, 'registry.insecure': 'true', 'image-manifest': 'false' } },
      { registry: { concurrency: IN_FLIGHT } },
      { concurrency: IN_FLIGHT },
    );
    const setupMs = Date.now() - t0;
    const digests = [...content.keys()];
    const label = pushed ? 'pushed (descriptor cache on, as Debian packages it; layers uploaded through the API)' : 'cold (no descriptor cache; layers seeded on disk)';
    console.log(`  verify, ${label}: setup ${pushed ? '(export uploading 10 000 layers)' : '(seed + export)'} ${setupMs} ms`);

    // The registry's own pace for these HEADs on kept-alive connections, before the first verify and after each,
    // so every verify has the pace just before and just after it: this VM's speed drifts within minutes.
    const floors = [await measured(reg, () => bareHeads(reg, digests, IN_FLIGHT, true))];
    console.log(`    bare HEAD loop, ${IN_FLIGHT} kept-alive connections (the registry's pace): ${line(floors[0]!, digests.length)}`);
    const runs: Awaited<ReturnType<typeof runVerify>>[] = [];
    for (let i = 0; i < VERIFY_RUNS; i++) {
      const v = await runVerify(reg, ref, IN_FLIGHT, path.join(tmp, `stats.json`));
      runs.push(v);
      const heads = v.stats.byMethod['HEAD'] ?? 0;
      const requests = Object.values(v.stats.byMethod).reduce((s, x) => s + x, 0);
      console.log(`    bkcache verify ${v.out.blobs} blobs, ${IN_FLIGHT} in flight (run ${i + 1}): ${line(v.m, heads)}; ok=${v.out.ok}  (${load()})`);
      console.log(
        `      requests: ${Object.entries(v.stats.byMethod).map(([k, n]) => `${n} ${k}`).join(', ')} (${(requests / v.out.blobs).toFixed(3)} per blob) over ${v.stats.connections} connections; ` +
          `after the process started: first GET ${v.stats.firstMs['GET']} ms, HEADs sent from ${v.stats.firstMs['HEAD']} to ${v.stats.lastMs['HEAD']} ms, exit ${v.stats.exitMs} ms`,
      );
      floors.push(await measured(reg, () => bareHeads(reg, digests, IN_FLIGHT, true)));
      console.log(`    bare HEAD loop again: ${line(floors[i + 1]!, digests.length)}`);
    }
    const ms = mid(runs.map((v) => v.m.ms));
    // Each verify against the mean of the loops just before and after it.
    const ratio = mid(runs.map((v, i) => v.m.ms / ((floors[i]!.ms + floors[i + 1]!.ms) / 2)));
    // The 10 s target is the registry as it is deployed (pushed). Without a descriptor cache the registry's own
    // loop takes about 10 s on these machines, so cold is reported against that pace, not against the target.
    const verdict = !runs.every((v) => v.out.ok)
      ? 'TARGET MISSED (verify found the cache broken)'
      : pushed
        ? ms < 10_000
          ? 'target met (< 10 000 ms)'
          : 'TARGET MISSED (< 10 000 ms)'
        : `${ms < 10_000 ? 'under' : 'over'} 10 000 ms; no target here, see the registry's own pace above`;
    console.log(`    [${name}] verify, median of ${VERIFY_RUNS} runs: ${Math.round(ms)} ms  ${verdict}`);
    console.log(`    verify / kept-alive loop (each run against the loops before and after it, median): ${ratio.toFixed(2)}x wall`);
    if (!pushed) {
      // What a HEAD loop costs when each HEAD opens a connection (undici's default, and verify's before it kept them alive).
      const fresh = await measured(reg, () => bareHeads(reg, digests, IN_FLIGHT, false));
      console.log(`    bare HEAD loop, a new connection per HEAD (undici's default): ${line(fresh, digests.length)}`);
    }
    // BKCACHE_BENCH_VERIFY_SWEEP=4,8,16: verify again at each of these concurrencies, to choose the default.
    for (const n of sweep) {
      const r = await runVerify(reg, ref, n, path.join(tmp, `stats-${n}.json`));
      console.log(`    sweep: bkcache verify, ${String(n).padStart(2)} in flight: ${line(r.m, r.stats.byMethod['HEAD'] ?? 0)}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    await reg.stop();
  }
}

async function verifyBench(): Promise<void> {
  const sweep = (process.env.BKCACHE_BENCH_VERIFY_SWEEP ?? '').split(',').filter(Boolean).map(Number);
  if (sweep.some((n) => !(Number.isInteger(n) && n > 0 && n <= 256))) throw new Error('BKCACHE_BENCH_VERIFY_SWEEP: comma-separated integers from 1 to 256');
  const only = process.env.BKCACHE_BENCH_VERIFY_SCENARIO;
  for (const name of ['cold', 'pushed'] as const) if (!only || only === name) await verifyScenario(name, sweep);
}

export async function lifecycleBench(): Promise<void> {
  console.log(`lifecycle: verify of 10 000 blobs on a local registry (target < 10 s with its descriptor cache, as deployed); trim, du, diff (targets: 20 000 records < 2000 ms each, near-linear)`);
  await verifyBench();
  // Every size in ROUNDS processes, round-robin; a size's figure is the median of its processes' medians.
  const runs = new Map<number, OpsRow[]>(SIZES.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) for (const n of SIZES) runs.get(n)!.push(runSize(n));
  const ops = ['trim', 'du', 'diff', 'walk'] as const;
  const at = (n: number, o: (typeof ops)[number]) => mid(runs.get(n)!.map((row) => row[`${o}Ms`]));
  console.log(`  CPU ms per run, median of ${SAMPLES} samples in each of ${ROUNDS} processes per size (${load()}):`);
  console.log(`  ${'records'.padStart(7)}${ops.map((o) => o.padStart(10)).join('')}   per record (µs)`);
  for (const n of SIZES) {
    const ok = n === 20_000 ? (Math.max(at(n, 'trim'), at(n, 'du'), at(n, 'diff')) < 2000 ? '  target met (< 2000 ms each)' : '  TARGET MISSED') : '';
    const perRecord = ops.map((o) => ((at(n, o) / n) * 1000).toFixed(2)).join(' ');
    console.log(`  ${String(n).padStart(7)}${ops.map((o) => at(n, o).toFixed(2).padStart(10)).join('')}   ${perRecord}${ok}`);
  }
  const lo = SIZES[0]!;
  const hi = SIZES.at(-1)!;
  const fits = new Map(ops.map((o) => [o, fitPower(SIZES.map((n) => [n, at(n, o)]))]));
  // The fitted per-record cost at the largest size over that at the smallest (1 = linear).
  const ratio = (o: (typeof ops)[number]) => (hi / lo) ** (fits.get(o)! - 1);
  const line = Math.max(NEAR_LINEAR, LOG_FACTOR * ratio('walk'));
  for (const o of ops) {
    const x = ratio(o);
    const verdict = o === 'walk' ? '(reference: a linear pass over the same records)' : `${(x / ratio('walk')).toFixed(2)}x the walk's  ${x <= line ? 'near-linear' : 'NOT LINEAR'}`;
    console.log(`  ${o}: time grows as records^${fits.get(o)!.toFixed(2)}; per-record ratio ${hi} / ${lo}: ${x.toFixed(2)}x (measured ${(at(hi, o) / at(lo, o) / (hi / lo)).toFixed(2)}x)  ${verdict}`);
  }
  console.log(
    `  near-linear: fitted per-record ratio <= ${line.toFixed(2)}x, the larger of ${NEAR_LINEAR}x and ${LOG_FACTOR.toFixed(2)}x (log 20 000 / log 1 000, an n log n sort) the linear walk's`,
  );
}

/** The exponent b of the least-squares fit ms = a * records^b (a straight line in log-log). */
function fitPower(points: [number, number][]): number {
  const xs = points.map(([n]) => Math.log(n));
  const ys = points.map(([, ms]) => Math.log(Math.max(ms, 1e-6)));
  const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
  const my = ys.reduce((s, y) => s + y, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

if (process.argv[1]?.endsWith('lifecycle.js')) {
  const size = process.argv[2];
  if (size) console.log(JSON.stringify(measureOps(Number(size))));
}
