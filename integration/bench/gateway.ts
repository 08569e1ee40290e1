// Benchmark: the registry gateway against the same client going straight to
// the same registry. 1 GiB (8 layers of 128 MiB) pushed with the project's
// registry store, direct and through a `bkcache serve` gateway, alternating
// for ROUNDS rounds (fresh repositories and bytes each time, the first of each
// pair swapping every round), then pulled back the same way; then 16
// clients at once through a fresh gateway, whose peak RSS (VmHWM) is read
// from /proc.
// The machine may be shared, so wall time is noisy: each ratio is the median
// of the rounds' ratios, every round is printed, and so is the CPU
// time (user + system, from /proc/PID/stat and the client's own count) the
// gateway, the registry and the client spend per GiB. The CPU line's ratio
// (direct's CPU over the gateway path's) is what the wall-time ratio tends to
// on a machine whose cores the direct push already keeps busy.
// Targets: gateway throughput >= 90% of direct, both ways; gateway peak RSS < 150 MiB with 16 clients.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { insecureHosts } from '../harness/gateway.js';
import { startRegistry } from '../harness/registry.js';
import { cpuSeconds, peakRssMiB } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

const ROUNDS = 3;

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

export async function gatewayBench(): Promise<void> {
  const reg = await startRegistry();
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
    const GiB = (8 * 128) / 1024;
    const measured = async (mode: 'push' | 'pull', host: string, repo: string, seed: number): Promise<Measured> => {
      const g0 = cpuSeconds(gw.proc.pid!);
      const r0 = cpuSeconds(reg.pid);
      const t = await worker([mode, `${host}/${repo}`, '8', '128', String(seed)]);
      return { ...t, gatewayCpu: cpuSeconds(gw.proc.pid!) - g0, registryCpu: cpuSeconds(reg.pid) - r0 };
    };
    /** ROUNDS of direct and through the gateway, who goes first swapping every round; round r's pull reads round r's push. */
    const alternate = async (mode: 'push' | 'pull'): Promise<Round[]> => {
      const rounds: Round[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // Fresh repositories and bytes for every push (so no blob is already there).
        const direct = () => measured(mode, reg.host, `bench/direct${r}`, 10 + 2 * r);
        const through = () => measured(mode, gw.host, `bench/through${r}`, 11 + 2 * r);
        if (r % 2 === 0) {
          const d = await direct();
          rounds.push({ d, g: await through() });
        } else {
          const g = await through();
          rounds.push({ d: await direct(), g });
        }
      }
      return rounds;
    };
    const line = (what: 'push' | 'pull', rounds: Round[]) => {
      const mid = (side: 'd' | 'g') => ({ ms: median(rounds.map((x) => x[side].ms)), bytes: rounds[0]![side].bytes });
      const [d, g, ratio] = [mid('d'), mid('g'), median(rounds.map((x) => x.d.ms / x.g.ms))];
      console.log(`  ${what}: direct ${d.ms} ms ${mbps(d)} MB/s, gateway ${g.ms} ms ${mbps(g)} MB/s: ${pct(ratio)}  ${ratio >= 0.9 ? 'target met' : 'TARGET MISSED'} (medians of ${ROUNDS} rounds)`);
      rounds.forEach((x, i) => console.log(`    ${what} round ${i + 1}: direct ${x.d.ms} ms, gateway ${x.g.ms} ms: ${pct(x.d.ms / x.g.ms)}`));
    };
    const pushes = await alternate('push');
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    line('push', pushes);
    const perGiB = (f: (m: Measured) => number, side: 'd' | 'g') => median(pushes.map((x) => f(x[side]))) / GiB;
    const gwCpu = perGiB((m) => m.gatewayCpu, 'g');
    const [regD, regG] = [perGiB((m) => m.registryCpu, 'd'), perGiB((m) => m.registryCpu, 'g')];
    const [cliD, cliG] = [perGiB((m) => m.cpuMs / 1000, 'd'), perGiB((m) => m.cpuMs / 1000, 'g')];
    console.log(
      `    push CPU-s/GiB (medians): gateway ${gwCpu.toFixed(2)}; registry ${regD.toFixed(2)} direct, ${regG.toFixed(2)} via gateway; ` +
        `client ${cliD.toFixed(2)} direct, ${cliG.toFixed(2)} via gateway; all ${(regD + cliD).toFixed(2)} direct, ${(gwCpu + regG + cliG).toFixed(2)} via gateway: ${pct((regD + cliD) / (gwCpu + regG + cliG))}`,
    );
    console.log(`    load average after the pushes: ${load} (${availableParallelism()} cores)`);
    line('pull', await alternate('pull'));
    console.log(`  gateway peak RSS after 1 GiB each way: ${peakRssMiB(gw.proc.pid!)} MiB`);

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
