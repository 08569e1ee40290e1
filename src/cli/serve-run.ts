// `bkcache serve`: runs the gRPC sidecar until SIGTERM or SIGINT, then shuts
// down gracefully (stop accepting, let calls finish within the grace period).
import { applyGatewayFlags } from '../gateway/config.js';
import { applyConfigFile, defaultConfig, isLogLevel } from '../server/config.js';
import { Daemon } from '../server/server.js';
import { tuneHeap } from '../server/tuning.js';
import { groupId, parseSocketMode } from '../api/address.js';
import { parseFlags } from './args.js';
import { SERVE_FLAGS } from './serve.js';
import { UsageError } from './usage-error.js';

export async function runServe(args: string[], help: string): Promise<number> {
  const { values } = parseFlags(args, SERVE_FLAGS);
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  // Defaults, then the file, then flags: the most specific setting wins.
  const cfg = defaultConfig();
  if (values.config) applyConfigFile(cfg, values.config);
  if (values.addr?.length) cfg.listen = values.addr;
  if (values.root) cfg.root = values.root;
  if (values['metrics-addr']) cfg.metricsAddr = values['metrics-addr'];
  if (values['tls-cert'] || values['tls-key']) {
    if (!values['tls-cert'] || !values['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
    cfg.tls = { cert: values['tls-cert'], key: values['tls-key'] };
  }
  if (values['tls-ca']) {
    if (!cfg.tls) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
    cfg.tls = { ...cfg.tls, ca: values['tls-ca'], clientAuth: true };
  }
  if (values.grace !== undefined) {
    const g = Number(values.grace);
    if (!(g >= 0)) throw new UsageError(`invalid --grace ${values.grace}`);
    cfg.shutdownGraceMs = g * 1000;
  }
  if (values['socket-mode'] !== undefined || values['socket-group'] !== undefined) {
    try {
      cfg.socket = {
        mode: values['socket-mode'] !== undefined ? parseSocketMode(values['socket-mode']) : undefined,
        group: values['socket-group'],
      };
      if (cfg.socket.group !== undefined) groupId(cfg.socket.group);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  try {
    cfg.gateway = applyGatewayFlags(cfg.gateway, values['gateway-addr'], values['gateway-upstream']);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values['insecure-no-auth-tcp']) cfg.auth = { ...cfg.auth, allowUnauthenticatedTcp: true };
  if (values['log-level']) {
    if (!isLogLevel(values['log-level'])) throw new UsageError(`invalid --log-level ${values['log-level']}`);
    cfg.logLevel = values['log-level'];
  }

  let heapGrowingPercent: number;
  try {
    heapGrowingPercent = tuneHeap();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }

  const daemon = new Daemon(cfg);
  daemon.ctx.log.debug('heap tuning', { heap_growing_percent: heapGrowingPercent || 'v8 default' });
  await daemon.start();
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      daemon.ctx.log.info('signal', { signal: sig });
      resolve();
      // A second signal means "now": skip the grace period.
      process.once(sig as NodeJS.Signals, () => process.exit(130));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await daemon.shutdown();
  daemon.ctx.log.info('stopped');
  // Should a stray handle outlive the server, do not hang the supervisor.
  setTimeout(() => process.exit(0), 3_000).unref();
  return 0;
}
