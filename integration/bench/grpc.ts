// Benchmark: a 1 GiB cache (8 random layers of 128 MiB, one record per layer
// chain) exported through the client library to a real `bkcache serve` over
// a unix socket, into the daemon's embedded local store (`type=local`), in
// three modes:
//   stream         the client reads a content store the daemon is told it
//                  cannot see (daemonCanRead: false) and streams every blob
//   stream-open    the client streams what `open()` returns (fs read streams)
//   content-store  the client names a directory laid out blobs/sha256/<hex>
//                  and the daemon reads it directly
// The daemon's root (the local store) is on tmpfs (/dev/shm) when there is
// one, and on the disk: the local store fsyncs every blob before publishing
// it (as containerd's does), so on disk the figures are bounded by how fast
// the disk takes durable writes, which the bench measures alongside.
// Every run gets a fresh daemon (so a fresh, empty target and its own peak
// RSS, read from /proc/<pid>/status VmHWM after the export) and a fresh
// client process (grpc-worker.js), both plain `node` with no flags. Runs of
// the modes alternate.
// Targets: streaming >= 400 MB/s (median run), sidecar peak RSS < 250 MiB
// (worst run), content-store mode faster than streaming (median against median).
//
// Where the time goes (2 cores, Node 20): the two processes together keep
// both cores nearly busy. Per GiB the daemon spends ~0.75 s hashing (sha256)
// and ~0.7 s of kernel time writing, the client ~0.5 s reading files and
// writing the socket. Garbage collection was the largest overhead: V8 counts
// Buffer bytes allocated since the last full GC against a limit derived from
// the (small) heap, so each process ran a full mark-compact every 15-30 MiB.
// The daemon raises its heap growing factor (src/server/tuning.ts); the
// client reuses its chunk buffers and frames chunks in place, sending Export
// over its own HTTP/2 call (src/client/grpc-call.ts), so in stream mode it
// allocates almost nothing per chunk. In stream-open mode the fs read
// streams allocate a buffer per read, and the client's GC comes back (~0.25 s
// per GiB). BKCACHE_BENCH_CLIENT_FLAGS passes node flags to the client
// (--initial-old-space-size=64, say) to see what a larger heap changes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, createWriteStream, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes, newHasher, parseDigest } from '../../src/oci/digest.js';
import { peakRssMiB } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const LAYERS = 8;
const LAYER_BYTES = 128 << 20;
const TOTAL = LAYERS * LAYER_BYTES;
/** Runs per mode; BKCACHE_BENCH_RUNS overrides. */
const RUNS = Number(process.env.BKCACHE_BENCH_RUNS) || 3;
/**
 * Node/V8 flags for the client process, to see how a solver's heap settings
 * change the figures (see above). Empty by default: a bare client process.
 */
const CLIENT_FLAGS = (process.env.BKCACHE_BENCH_CLIENT_FLAGS ?? '').split(/\s+/).filter(Boolean);
const MODES = ['stream', 'stream-open', 'content-store'] as const;
type Mode = (typeof MODES)[number];

interface Run {
  ms: number;
  uploadedBytes: number;
  receivedBytes: number;
  sentBytes: number;
  requested: number;
  clientPeakRssMiB: number;
  sidecarPeakRssMiB: number;
}

/** Writes random layers into `dir` as a content store (blobs/sha256/<hex>), hashing while writing. */
async function makeContentStore(dir: string): Promise<Descriptor[]> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const out: Descriptor[] = [];
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < LAYERS; i++) {
    const tmp = path.join(blobs, `layer-${i}.tmp`);
    const ws = createWriteStream(tmp);
    const h = newHasher();
    for (let n = 0; n < LAYER_BYTES; n += chunk.length) {
      randomFillSync(chunk);
      h.update(chunk);
      // write() keeps a reference to the buffer: hand it a copy, as the next fill reuses `chunk`.
      if (!ws.write(Buffer.from(chunk))) await once(ws, 'drain');
    }
    ws.end();
    await once(ws, 'finish');
    const digest = h.digest();
    renameSync(tmp, path.join(blobs, parseDigest(digest).hex));
    out.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest,
      size: LAYER_BYTES,
      annotations: { 'containerd.io/uncompressed': digestBytes(`grpc-bench-diff-${i}-${digest}`) },
    });
  }
  return out;
}

/** `bkcache serve` on a temp unix socket with a temp root; resolves once it logs "listening". */
async function startDaemon(parent: string): Promise<{ addr: string; proc: ChildProcess; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(parent, 'bkcache-bench-daemon-'));
  const sock = path.join(dir, 'bkcache.sock');
  // dist/integration/bench -> dist/src/cli/main.js
  const bin = path.join(here, '../../src/cli/main.js');
  const proc = spawn(process.execPath, [bin, 'serve', '--addr', `unix://${sock}`, '--root', path.join(dir, 'root')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = once(proc, 'exit');
  let stderr = '';
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true }); // its root, with the 1 GiB just exported
  };
  try {
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (/"msg":"listening"/.test(stderr)) resolve();
      });
      exited.then(([code]) => reject(new Error(`bkcache serve exited ${code} before listening:\n${stderr}`)), reject);
      setTimeout(() => reject(new Error(`bkcache serve did not start within 15 s:\n${stderr}`)), 15_000).unref();
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { addr: `unix://${sock}`, proc, stop };
}

async function runOnce(mode: Mode, layersJson: string, csDir: string, rootParent: string): Promise<Run> {
  const daemon = await startDaemon(rootParent);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [...CLIENT_FLAGS, path.join(here, 'grpc-worker.js'), mode, daemon.addr, layersJson, csDir], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Omit<Run, 'sidecarPeakRssMiB'>;
    if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) throw new Error('bkcache serve died during the export');
    const sidecarPeakRssMiB = peakRssMiB(daemon.proc.pid!);
    // Sanity: every blob landed in the target, and came the way the mode says.
    if (r.uploadedBytes !== TOTAL) throw new Error(`${mode}: the daemon stored ${r.uploadedBytes} bytes, expected ${TOTAL}`);
    const expectReceived = mode === 'content-store' ? 0 : TOTAL;
    if (r.receivedBytes !== expectReceived) throw new Error(`${mode}: the daemon received ${r.receivedBytes} bytes over the call, expected ${expectReceived}`);
    return { ...r, sidecarPeakRssMiB };
  } finally {
    await daemon.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mbps = (ms: number) => TOTAL / 1e6 / (ms / 1000);

/** tmpfs for the daemon's root when the machine has a writable one. */
function tmpfsDir(): string | undefined {
  try {
    const probe = mkdtempSync('/dev/shm/bkcache-bench-probe-');
    rmSync(probe, { recursive: true });
    return '/dev/shm';
  } catch {
    return undefined;
  }
}

/** How fast the filesystem under `dir` takes 1 GiB written in 1 MiB pieces and fsynced: the ceiling for a local store there. */
function durableWriteMBps(dir: string): number {
  const file = path.join(mkdtempSync(path.join(dir, 'bkcache-bench-disk-')), 'probe');
  const chunk = randomFillSync(Buffer.alloc(1 << 20));
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  try {
    for (let n = 0; n < TOTAL; n += chunk.length) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    rmSync(path.dirname(file), { recursive: true, force: true });
  }
  return mbps(performance.now() - t0);
}

export async function grpcBench(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'bkcache-bench-grpc-'));
  try {
    const csDir = path.join(work, 'content');
    const layers = await makeContentStore(csDir);
    const layersJson = path.join(work, 'layers.json');
    writeFileSync(layersJson, JSON.stringify(layers));
    const shm = tmpfsDir();
    const roots: [string, string][] = [...(shm ? [['tmpfs', shm] as [string, string]] : []), ['disk', tmpdir()]];

    console.log(
      `grpc: Export of a 1 GiB cache (${LAYERS} layers of ${LAYER_BYTES >> 20} MiB) over a unix socket into the daemon's local store, ${RUNS} runs per mode (targets: stream >= 400 MB/s, sidecar peak RSS < 250 MiB, content-store dir faster than stream)`,
    );
    if (CLIENT_FLAGS.length) console.log(`  client node flags: ${CLIENT_FLAGS.join(' ')}`);
    for (const [label, parent] of roots) {
      const runs: Record<Mode, Run[]> = { stream: [], 'stream-open': [], 'content-store': [] };
      for (let i = 0; i < RUNS; i++) for (const mode of MODES) runs[mode].push(await runOnce(mode, layersJson, csDir, parent));
      const ceiling = label === 'disk' ? `; this disk takes 1 GiB of fsynced writes at ${durableWriteMBps(parent).toFixed(0)} MB/s` : '';
      console.log(`  local store on ${label} (${parent})${ceiling}`);
      for (const mode of MODES) {
        for (const [i, r] of runs[mode].entries()) {
          console.log(
            `    ${mode.padEnd(13)}  run ${i + 1}  ${String(r.ms).padStart(6)} ms  ${mbps(r.ms).toFixed(0).padStart(5)} MB/s  sidecar peak RSS ${r.sidecarPeakRssMiB} MiB  (client ${r.clientPeakRssMiB} MiB)`,
          );
        }
      }
      const med = (m: Mode) => median(runs[m].map((r) => r.ms));
      const peak = (m: Mode) => Math.max(...runs[m].map((r) => r.sidecarPeakRssMiB));
      for (const mode of ['stream', 'stream-open'] as const) {
        const ok = mbps(med(mode)) >= 400 && peak(mode) < 250;
        console.log(`    ${mode.padEnd(13)}  median ${mbps(med(mode)).toFixed(0).padStart(5)} MB/s  worst sidecar peak RSS ${peak(mode)} MiB  ${ok ? 'target met' : 'TARGET MISSED'}`);
      }
      const csOk = med('content-store') < med('stream') && peak('content-store') < 250;
      console.log(
        `    content-store  median ${mbps(med('content-store')).toFixed(0).padStart(5)} MB/s  worst sidecar peak RSS ${peak('content-store')} MiB  ${(med('stream') / med('content-store')).toFixed(2)}x stream  ${csOk ? 'target met' : 'TARGET MISSED'}`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
