// `bkcache serve`: runs the gRPC sidecar until SIGTERM or SIGINT, then shuts
// down gracefully (stop accepting, let calls finish within the grace period).
import { applyGatewayFlags } from '../gateway/config.js';
import { applyConfigFile, defaultConfig, isLogLevel } from '../server/config.js';
import { Daemon } from '../server/server.js';
import { tuneHeap } from '../server/tuning.js';
import type { Command } from './commands.js';
import { parseFlags } from './args.js';
import { UsageError } from './usage-error.js';

const help = `Usage: bkcache serve [--addr ADDR ...] [--config FILE] [--root DIR] [--metrics-addr HOST:PORT]

Runs the bkcache daemon: a gRPC service (proto/bkcache/v1/cache.proto) that
exports, imports, inspects and copies BuildKit caches for a build solver.
Logs are JSON lines on stderr. SIGTERM or SIGINT stops it gracefully.

  --addr ADDR            unix:///path.sock or tcp://host:port; repeat to listen on several.
                         Default: unix:///run/bkcache/bkcache.sock, else
                         $XDG_RUNTIME_DIR/bkcache/bkcache.sock, else /tmp/bkcache-$UID/bkcache.sock
  --config FILE          YAML or JSON settings: listen, root, metricsAddr, tls, registry
                         (hosts, credentialsFile), limits, shutdownGraceSeconds, log,
                         auth (bearer tokens), tiers (global and tenant caches)
  --root DIR             the embedded default store (an OCI layout directory) used by
                         specs without a place (type=local with no src/dest).
                         Default: ~/.local/share/bkcache/store
  --metrics-addr H:P     serve Prometheus metrics on http://H:P/metrics
  --tls-cert FILE        TLS certificate for tcp:// listeners (with --tls-key)
  --tls-key FILE
  --tls-ca FILE          require client certificates signed by this CA (mTLS)
  --grace SECONDS        how long calls in flight may take after SIGTERM (default 30)
  --log-level LEVEL      debug, info, error or off (default info)
  --gateway-addr ADDR    also serve the OCI distribution API (a registry gateway) on
                         tcp://host:port or unix:///path (config: gateway.listen)
  --gateway-upstream U   what the gateway stores into: HOST[:PORT][/PREFIX] of a registry,
                         or local for the embedded store (config: gateway.upstream)
  --insecure-no-auth-tcp listen on tcp:// although no auth key is configured: every
                         caller then has the daemon's full access (config:
                         auth.allowUnauthenticatedTcp). Without auth (auth.hmacSecretFile
                         or auth.publicKeyFile in --config) the daemon otherwise serves
                         unix sockets only. Tokens: bkcache token --help

Environment: BKCACHE_HEAP_GROWING_PERCENT sets V8's heap growing factor for
the daemon (default 300, 0 leaves V8's own; see src/server/tuning.ts).
`;

export const serve: Command = {
  summary: 'Run the gRPC sidecar daemon',
  help,
  async run(args: string[]): Promise<number> {
    const { values } = parseFlags(args, {
      addr: { type: 'string', multiple: true },
      config: { type: 'string' },
      root: { type: 'string' },
      'metrics-addr': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      grace: { type: 'string' },
      'log-level': { type: 'string' },
      'insecure-no-auth-tcp': { type: 'boolean' },
      'gateway-addr': { type: 'string' },
      'gateway-upstream': { type: 'string' },
    });
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
  },
};
