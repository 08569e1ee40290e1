// Benchmarks of the lifecycle tools.
// - verify: a cache naming 10 000 blobs in a real local registry, checked by
//   the CLI (`bkcache verify`, HEAD per blob). Target: under 10 s.
// - trim (plan + marshal of the kept part), du and diff on caches of the
//   graph bench's family at 1 000, 5 000 and 20 000 records, each size in its
//   own process. Targets: 20 000 records under 2 s each, near-linear (time per
//   record at 20 000 within 2x of that at 1 000).
//
//   node dist/integration/bench/lifecycle.js 20000   # one size, JSON
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { decodeCacheConfig } from '../../src/cache/config.js';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { diffGraphs } from '../../src/cache/lifecycle/diff.js';
import { diskUsage } from '../../src/cache/lifecycle/du.js';
import { planTrim } from '../../src/cache/lifecycle/trim.js';
import { exportGraph } from '../../src/cache/operations.js';
import { parseConfig } from '../../src/cache/parse.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { startRegistry } from '../harness/registry.js';
import { generate } from './graph.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

/**
 * Mean time of `fn` over `runs` runs. Small sizes run more often (the same
 * total work as one run at 20 000 records), so their per-record figures are
 * not lost in timer and JIT noise.
 */
function time<T>(fn: () => T, runs: number): { value: T; ms: number } {
  let value = fn(); // warm-up, not timed
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) value = fn();
  return { value, ms: Number(process.hrtime.bigint() - t0) / 1e6 / runs };
}

/** One size: a generated cache A, and B with one record in the middle changed (its dependents diverge). */
export function measureOps(records: number): { records: number; trimMs: number; duMs: number; diffMs: number; dropped: number; divergences: number } {
  const { bytes, descriptors } = generate(records);
  const load = (changed: boolean) => {
    const cc = decodeCacheConfig(bytes);
    if (changed) cc.records[Math.floor(cc.records.length / 2)]!.digest = sha('changed');
    const g = new CacheGraph();
    parseConfig(g, cc, descriptors);
    return g;
  };
  const a = load(false);
  const b = load(true);
  // Keep about half the blobs: the generator's layers are shared, so this drops many results.
  let total = 0;
  for (const d of descriptors.values()) total += d.size;
  const runs = Math.max(1, Math.round(20_000 / records));
  const trim = time(() => {
    const plan = planTrim(a, { maxSize: Math.floor(total / 2) });
    plan.graph.marshal();
    return plan.dropped.length;
  }, runs);
  const du = time(() => diskUsage(a), runs);
  const diff = time(() => diffGraphs(a, b), runs);
  return {
    records,
    trimMs: Math.round(trim.ms * 100) / 100,
    duMs: Math.round(du.ms * 100) / 100,
    diffMs: Math.round(diff.ms * 100) / 100,
    dropped: trim.value,
    divergences: diff.value.divergences.length,
  };
}

function runSize(size: number): ReturnType<typeof measureOps> {
  const out = execFileSync(process.execPath, [path.join(here, 'lifecycle.js'), String(size)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

async function verifyBench(): Promise<void> {
  const BLOBS = 10_000;
  const reg = await startRegistry();
  try {
    // 2 000 records, each a result of 5 layers of its own: 10 000 distinct blobs.
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
    const spec = `type=registry,ref=${reg.host}/bench/verify:latest,registry.insecure=true`;
    const t0 = Date.now();
    await exportGraph(
      g,
      { fetch: async (d) => Readable.from([content.get(d.digest)!]) },
      { type: 'registry', attrs: { ref: `${reg.host}/bench/verify:latest`, 'registry.insecure': 'true', 'image-manifest': 'false' } },
      {},
      { concurrency: 16 },
    );
    const pushMs = Date.now() - t0;
    const cli = path.join(here, '../../src/cli/main.js');
    const t1 = process.hrtime.bigint();
    const out = JSON.parse(execFileSync(process.execPath, [cli, 'verify', '--format', 'json', '--concurrency', '16', '--import-cache', spec], { encoding: 'utf8' }));
    const ms = Number(process.hrtime.bigint() - t1) / 1e6;
    // The registry's own pace: the same HEADs as bare fetch calls, 16 in flight, no client of ours.
    const digests = [...content.keys()];
    const t2 = process.hrtime.bigint();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < digests.length) {
          const r = await fetch(`${reg.url}/v2/bench/verify/blobs/${digests[next++]}`, { method: 'HEAD' });
          if (r.status !== 200) throw new Error(`HEAD answered ${r.status}`);
        }
      }),
    );
    const baseMs = Number(process.hrtime.bigint() - t2) / 1e6;
    console.log(
      `  verify ${out.blobs} blobs (HEAD each, 16 in flight): ${Math.round(ms)} ms, ok=${out.ok}  ${ms < 10_000 && out.ok ? 'target met' : 'TARGET MISSED'}` +
        `  (bare HEAD loop against the same registry: ${Math.round(baseMs)} ms; load average ${os.loadavg()[0]!.toFixed(1)}; setup push ${pushMs} ms)`,
    );
  } finally {
    await reg.stop();
  }
}

export async function lifecycleBench(): Promise<void> {
  console.log('lifecycle: verify of 10 000 blobs on a local registry (target < 10 s); trim, du, diff (target: 20 000 records < 2000 ms each, near-linear)');
  await verifyBench();
  const rows = [1000, 5000, 20000].map(runSize);
  for (const r of rows) {
    const ok = r.records === 20000 ? (Math.max(r.trimMs, r.duMs, r.diffMs) < 2000 ? 'target met' : 'TARGET MISSED') : '';
    console.log(
      `  ${String(r.records).padStart(6)} records  trim ${String(r.trimMs).padStart(5)} ms (${r.dropped} results dropped)  du ${String(r.duMs).padStart(5)} ms  diff ${String(r.diffMs).padStart(5)} ms (${r.divergences} divergences)  ${ok}`,
    );
  }
  const [small, , big] = rows as [ReturnType<typeof measureOps>, unknown, ReturnType<typeof measureOps>];
  for (const op of ['trimMs', 'duMs', 'diffMs'] as const) {
    // Per-record cost at 20 000 over that at 1 000 (1 = linear).
    const ratio = big[op] / 20 / Math.max(small[op], 0.01);
    console.log(`  ${op.replace('Ms', '')}: per-record cost at 20 000 is ${ratio.toFixed(2)}x that at 1 000  ${ratio <= 2 ? 'near-linear' : 'NOT LINEAR'}`);
  }
}

if (process.argv[1]?.endsWith('lifecycle.js')) {
  const size = process.argv[2];
  if (size) console.log(JSON.stringify(measureOps(Number(size))));
}
