// A `bkcache serve` with its registry gateway on a loopback port the kernel
// picks (tcp://127.0.0.1:0; the daemon logs the bound address), in front of
// `upstream` (a registry host[:port][/prefix] or `local`).
import { startDaemon, type DaemonProcess } from './daemon.js';

export interface GatewayProcess {
  d: DaemonProcess;
  /** "127.0.0.1:PORT", to put in references. */
  host: string;
  url: string;
}

export async function startGateway(opts: { upstream: string; args?: string[]; env?: Record<string, string> }): Promise<GatewayProcess> {
  const d = await startDaemon({
    args: ['--gateway-addr', 'tcp://127.0.0.1:0', '--gateway-upstream', opts.upstream, ...(opts.args ?? [])],
    env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config', ...opts.env },
  });
  const line = d.logs.find((l) => l.msg === 'listening');
  const addr = String(line?.gateway ?? '');
  const m = /^tcp:\/\/(.+)$/.exec(addr);
  if (!m) {
    await d.stop('SIGKILL');
    d.cleanup();
    throw new Error(`the daemon logged no gateway address: ${JSON.stringify(line)}`);
  }
  return { d, host: m[1]!, url: `http://${m[1]}` };
}

/** Config-file text for a registry reachable over plain HTTP on loopback. */
export function insecureHosts(...hosts: string[]): string {
  return `registry:\n  hosts:\n${hosts.map((h) => `    "${h}": { insecure: true }\n`).join('')}`;
}

/** Starts a daemon from a config file (whose gateway section listens on tcp://127.0.0.1:0) and finds its gateway. */
export async function startGatewayFromConfig(cfgFile: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const d = await startDaemon({ args: ['--config', cfgFile], env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config', ...env } });
  const addr = String(d.logs.find((l) => l.msg === 'listening')?.gateway ?? '');
  if (!addr.startsWith('tcp://')) {
    await d.stop('SIGKILL');
    d.cleanup();
    throw new Error(`the daemon logged no gateway address`);
  }
  const host = addr.slice('tcp://'.length);
  return { d, host, url: `http://${host}` };
}
