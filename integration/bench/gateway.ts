// Benchmark: the registry gateway against the same client going straight to
// the same registry. 1 GiB (8 layers of 128 MiB) pushed with the project's
// registry store, direct and through a `bkcache serve` gateway, then pulled
// back the same way, for ROUNDS rounds (fresh repositories and bytes each
// round, the first of each pair swapping every round); then 16 clients at
// once through a fresh gateway, whose peak RSS (VmHWM) is read from /proc.
// The registry keeps its storage on tmpfs (/dev/shm) when there is room, and
// each round's blobs and repositories are deleted after it: neither path then
// waits on a virtual disk's writeback of what an earlier round wrote, and
// the page cache stays small. Equal for both paths.
// The machine may be shared, so wall time is noisy: each ratio is the median
// of the rounds' ratios, every round is printed, and so are the CPU steal
// (from /proc/stat) over the push and the pull phases and the CPU time (user +
// system, from /proc/PID/stat and the client's own count) the gateway, the
// registry and the client spend per GiB. The CPU line's ratio (direct's CPU
// over the gateway path's) is what the wall-time ratio tends to on a machine
// whose cores the direct transfer already keeps busy (with storage on tmpfs,
// two cores are).
// Targets: gateway throughput >= 90% of direct, both ways; gateway peak RSS < 150 MiB with 16 clients.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, mkdtempSync, statfsSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { insecureHosts } from '../harness/gateway.js';
import { startRegistry } from '../harness/registry.js';
import { cpuSeconds, machineTimes, peakRssMiB } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

const ROUNDS = 5;

interface Transfer {
  ms: number;
  bytes: number;
  /** The client process's CPU time on the transfer. */
  cpuMs: number;
}

async function worker(args: string[]): Promise<Transfer> {
  const { stdout } = await run(process.execPath, [path.join(here, 'gateway-worker.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

interface Gw {
  proc: ChildProcess;
  host: string;
  dir: string;
}

/**
 * `bkcache serve` with a gateway, from the build this bench runs in
 * (dist/integration/bench -> dist/src/cli/main.js; the test harness resolves
 * the binary from the sources instead).
 */
async function serveGateway(upstream: string, cfg: string): Promise<Gw> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bkcache-bench-gwd-'));
  const bin = path.join(here, '../../src/cli/main.js');
  const proc = spawn(
    process.execPath,
    [bin, 'serve', '--addr', `unix://${dir}/d.sock`, '--root', path.join(dir, 'root'), '--config', cfg, '--gateway-addr', 'tcp://127.0.0.1:0', '--gateway-upstream', upstream],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } },
  );
  const host = await new Promise<string>((resolve, reject) => {
    let buf = '';
    proc.stderr!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /"msg":"listening".*?"gateway":"tcp:\/\/([^"]+)"/.exec(buf);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`bkcache serve exited ${code}:\n${buf}`)));
    setTimeout(() => reject(new Error(`bkcache serve did not start:\n${buf}`)), 15_000).unref();
  });
  return { proc, host, dir };
}

async function stopGateway(g: Gw): Promise<void> {
  if (g.proc.exitCode === null) {
    const done = new Promise((r) => g.proc.once('exit', r));
    g.proc.kill('SIGTERM');
    await done;
  }
  rmSync(g.dir, { recursive: true, force: true });
}

/** Whole percent, rounded down: a ratio printed as 90% has met the 90% target. */
const pct = (r: number) => `${Math.floor(r * 100)}%`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** A transfer with the CPU seconds the gateway and the registry spent meanwhile. */
interface Measured extends Transfer {
  gatewayCpu: number;
  registryCpu: number;
}

/** One round: the same transfer direct and through the gateway. */
interface Round {
  d: Measured;
  g: Measured;
}

/** The share of the machine's CPU time its host took (steal) over some phases, summed. */
class Steal {
  private steal = 0;
  private total = 0;
  async over<T>(fn: () => Promise<T>): Promise<T> {
    const a = machineTimes();
    try {
      return await fn();
    } finally {
      const b = machineTimes();
      this.steal += b.steal - a.steal;
      this.total += b.total - a.total;
    }
  }
  toString(): string {
    return `${this.total ? ((100 * this.steal) / this.total).toFixed(1) : '0.0'}%`;
  }
}

/**
 * Where the registry keeps its storage: tmpfs when there is one with room for
 * a round (2 x 1 GiB, deleted after each round), so neither path waits on a
 * virtual disk's writeback of what an earlier round wrote.
 */
function storageParent(): string | undefined {
  try {
    const st = statfsSync('/dev/shm');
    return st.bavail * st.bsize > 4 * 2 ** 30 ? '/dev/shm' : undefined;
  } catch {
    return undefined;
  }
}

export async function gatewayBench(): Promise<void> {
  const parentDir = storageParent();
  const reg = await startRegistry({ parentDir });
  // distribution's filesystem layout: <root>/docker/registry/v2/{blobs,repositories}.
  const v2 = path.resolve(reg.blobPath(`sha256:${'0'.repeat(64)}`), '../../../../..');
  const dir = mkdtempSync(path.join(tmpdir(), 'bkcache-bench-gw-'));
  writeFileSync(path.join(dir, 'cfg.yaml'), insecureHosts(reg.host));
  const gateways: Gw[] = [];
  const gateway = async () => {
    const g = await serveGateway(`${reg.host}/gw`, path.join(dir, 'cfg.yaml'));
    gateways.push(g);
    return g;
  };
  try {
    const gw = await gateway();
    const mbps = (r: { ms: number; bytes: number }) => (r.bytes / 1e6 / (r.ms / 1000)).toFixed(0);
    console.log('gateway: 1 GiB (8 x 128 MiB), same client direct and through the gateway (target: >= 90% of direct; peak RSS < 150 MiB with 16 clients)');
    console.log(`  registry storage: ${parentDir ?? tmpdir()}${parentDir ? ' (tmpfs)' : ''}, each round's blobs and repositories deleted after the round`);
    const GiB = (8 * 128) / 1024;
    const measured = async (mode: 'push' | 'pull', host: string, repo: string, seed: number): Promise<Measured> => {
      const g0 = cpuSeconds(gw.proc.pid!);
      const r0 = cpuSeconds(reg.pid);
      const t = await worker([mode, `${host}/${repo}`, '8', '128', String(seed)]);
      return { ...t, gatewayCpu: cpuSeconds(gw.proc.pid!) - g0, registryCpu: cpuSeconds(reg.pid) - r0 };
    };
    const steal = { push: new Steal(), pull: new Steal() };
    /** Direct and through the gateway, who goes first swapping every round. */
    const pair = (mode: 'push' | 'pull', r: number): Promise<Round> =>
      steal[mode].over(async () => {
        // Fresh repositories and bytes every round (so no blob is already there); round r's pull reads round r's push.
        const direct = () => measured(mode, reg.host, `bench/direct${r}`, 10 + 2 * r);
        const through = () => measured(mode, gw.host, `bench/through${r}`, 11 + 2 * r);
        if (r % 2 === 0) {
          const d = await direct();
          return { d, g: await through() };
        }
        const g = await through();
        return { d: await direct(), g };
      });
    const pushes: Round[] = [];
    const pulls: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      pushes.push(await pair('push', r));
      pulls.push(await pair('pull', r));
      // Nothing names these any more (no descriptor cache, the next round uses new repositories and bytes).
      for (const sub of ['blobs', 'repositories']) rmSync(path.join(v2, sub), { recursive: true, force: true });
    }
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const line = (what: 'push' | 'pull', rounds: Round[]) => {
      const mid = (side: 'd' | 'g') => ({ ms: median(rounds.map((x) => x[side].ms)), bytes: rounds[0]![side].bytes });
      const [d, g, ratio] = [mid('d'), mid('g'), median(rounds.map((x) => x.d.ms / x.g.ms))];
      console.log(`  ${what}: direct ${d.ms} ms ${mbps(d)} MB/s, gateway ${g.ms} ms ${mbps(g)} MB/s: ${pct(ratio)}  ${ratio >= 0.9 ? 'target met' : 'TARGET MISSED'} (medians of ${ROUNDS} rounds; CPU steal ${steal[what]})`);
      rounds.forEach((x, i) => console.log(`    ${what} round ${i + 1}: direct ${x.d.ms} ms, gateway ${x.g.ms} ms: ${pct(x.d.ms / x.g.ms)}`));
      const perGiB = (f: (m: Measured) => number, side: 'd' | 'g') => median(rounds.map((x) => f(x[side]))) / GiB;
      const gwCpu = perGiB((m) => m.gatewayCpu, 'g');
      const [regD, regG] = [perGiB((m) => m.registryCpu, 'd'), perGiB((m) => m.registryCpu, 'g')];
      const [cliD, cliG] = [perGiB((m) => m.cpuMs / 1000, 'd'), perGiB((m) => m.cpuMs / 1000, 'g')];
      console.log(
        `    ${what} CPU-s/GiB (medians): gateway ${gwCpu.toFixed(2)}; registry ${regD.toFixed(2)} direct, ${regG.toFixed(2)} via gateway; ` +
          `client ${cliD.toFixed(2)} direct, ${cliG.toFixed(2)} via gateway; all ${(regD + cliD).toFixed(2)} direct, ${(gwCpu + regG + cliG).toFixed(2)} via gateway: ${pct((regD + cliD) / (gwCpu + regG + cliG))}`,
      );
    };
    line('push', pushes);
    line('pull', pulls);
    console.log(`    load average after the rounds: ${load} (${availableParallelism()} cores)`);
    console.log(`  gateway peak RSS after ${ROUNDS} GiB each way: ${peakRssMiB(gw.proc.pid!)} MiB`);

    const fresh = await gateway();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 16 }, (_, i) => worker(['push', `${fresh.host}/bench/c${i}`, '2', '32', String(100 + i)])));
    await Promise.all(Array.from({ length: 16 }, (_, i) => worker(['pull', `${fresh.host}/bench/c${i}`, '2', '32', String(100 + i)])));
    const rss = peakRssMiB(fresh.proc.pid!);
    console.log(`  16 clients x 64 MiB pushed and pulled in ${Math.round(performance.now() - t0)} ms: gateway peak RSS ${rss} MiB  ${rss < 150 ? 'target met' : 'TARGET MISSED'}`);
  } finally {
    for (const g of gateways) await stopGateway(g);
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
