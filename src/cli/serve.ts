// `bkcache serve`: runs the gRPC sidecar until SIGTERM or SIGINT, then shuts
// down gracefully (stop accepting, let calls finish within the grace period).
import type { FlagOptions } from './args.js';
import type { Command } from './commands.js';

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
  --socket-mode MODE     permissions of unix sockets, octal (e.g. 0660): connecting needs
                         write permission. Default: the umask's (owner only, usually)
  --socket-group GROUP   group of unix sockets (a name or gid), so a solver running as
                         another user in that group can connect (with --socket-mode 0660)
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

export const SERVE_FLAGS = {
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
  'socket-mode': { type: 'string' },
  'socket-group': { type: 'string' },
  'gateway-addr': { type: 'string' },
  'gateway-upstream': { type: 'string' },
} as const satisfies FlagOptions;

export const serve: Command = {
  summary: 'Run the gRPC sidecar daemon',
  help,
  flags: SERVE_FLAGS,
  async run(args: string[]): Promise<number> {
    // Loaded only when run: the daemon code is not needed for --help.
    const { runServe } = await import('./serve-run.js');
    return runServe(args, help);
  },
};
