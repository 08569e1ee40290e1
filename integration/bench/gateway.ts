// Benchmark: the registry gateway against the same client going straight to
// the same registry. 1 GiB (8 layers of 128 MiB) pushed and pulled with the
// project's registry store, once direct and once through a `bkcache serve`
// gateway; then 16 clients at once through a fresh gateway, whose peak RSS
// (VmHWM) is read from /proc.
// Targets: gateway throughput >= 90% of direct, both ways; gateway peak RSS < 150 MiB with 16 clients.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { insecureHosts } from '../harness/gateway.js';
import { startRegistry } from '../harness/registry.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

async function worker(args: string[]): Promise<{ ms: number; bytes: number }> {
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

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
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
    const directPush = await worker(['push', `${reg.host}/bench/direct`, '8', '128', '1']);
    const gwPush = await worker(['push', `${gw.host}/bench/through`, '8', '128', '2']);
    const directPull = await worker(['pull', `${reg.host}/bench/direct`, '8', '128', '1']);
    const gwPull = await worker(['pull', `${gw.host}/bench/through`, '8', '128', '2']);
    for (const [what, d, g] of [['push', directPush, gwPush], ['pull', directPull, gwPull]] as const) {
      const ratio = d.ms / g.ms;
      console.log(`  ${what}: direct ${d.ms} ms ${mbps(d)} MB/s, gateway ${g.ms} ms ${mbps(g)} MB/s: ${(ratio * 100).toFixed(0)}%  ${ratio >= 0.9 ? 'target met' : 'TARGET MISSED'}`);
    }
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
