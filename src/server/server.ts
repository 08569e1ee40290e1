// The daemon: one grpc-js server with CacheService, Health and reflection,
// bound to unix sockets and/or TCP (optionally TLS / mTLS), plus an optional
// /metrics endpoint. Shutdown stops accepting, lets calls in flight finish
// within a grace period, then cancels what is left (a cancelled export
// writes no manifest) and removes its sockets.
// With auth configured every CacheService call needs a bearer token (see
// access.ts); without it the daemon refuses TCP listeners unless told
// explicitly (auth.allowUnauthenticatedTcp / --insecure-no-auth-tcp), since
// anyone who can reach such a port would have the daemon's registry access.
import { readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { failedPrecondition } from '../errors.js';
import { removeStaleTempFiles } from '../store/local/index.js';
import { loadAuth } from './access.js';
import { algForKey } from './auth/token.js';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { formatAddress, grpcTarget, parseAddress, prepareUnixSocket, defaultListenSocket, setSocketAccess, type ListenAddress } from '../api/address.js';
import { perTenantLimit, type DaemonConfig, type Limits } from './config.js';
import type { ServerContext } from './context.js';
import { exportHandler } from './export-call.js';
import { copyHandler, copyStreamHandler, fetchBlobHandler, importHandler, inspectHandler } from './handlers.js';
import { HealthService, healthProto } from './health.js';
import { jsonLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { cacheProto } from '../api/proto.js';
import { Semaphore } from './semaphore.js';
import { tuneHttp2 } from './tuning.js';
import { guardHeaderBlocks } from './header-guard.js';
import { Gateway } from '../gateway/server.js';

export const SERVICE_NAME = 'bkcache.v1.CacheService';

function slots(l: Limits, pool: number, perTenant: number, what: string): Semaphore {
  return new Semaphore(
    { limit: pool, perTenant: perTenantLimit(perTenant, pool), maxQueued: l.maxQueued, queuedPerTenant: perTenantLimit(l.maxQueuedPerTenant, l.maxQueued) },
    what,
  );
}


export class Daemon {
  readonly ctx: ServerContext;
  readonly health = new HealthService([SERVICE_NAME]);
  /** Addresses actually bound (tcp port 0 resolved), as unix:///path or tcp://host:port. */
  readonly addresses: string[] = [];
  metricsAddress?: string;
  /** The registry gateway, when cfg.gateway is set. */
  gateway?: Gateway;
  private readonly server: grpc.Server;
  private metricsServer?: http.Server;
  private readonly sockets: string[] = [];
  private stopping?: Promise<void>;

  constructor(
    readonly cfg: DaemonConfig,
    log: Logger = jsonLogger(cfg.logLevel),
  ) {
    const l = cfg.limits;
    this.ctx = {
      cfg,
      log,
      metrics: new Metrics(),
      exportSlots: slots(l, l.maxConcurrentExports, l.maxExportsPerTenant, 'export'),
      importSlots: slots(l, l.maxConcurrentImports, l.maxImportsPerTenant, 'import'),
      fetchSlots: slots(l, l.maxConcurrentFetches, l.maxFetchesPerTenant, 'FetchBlob'),
      // Key files are read here, so a bad key stops the daemon before it listens.
      auth: loadAuth(cfg),
    };
    this.server = new grpc.Server({
      // Oversize messages are refused by grpc-js with RESOURCE_EXHAUSTED before they reach a handler.
      'grpc.max_receive_message_length': l.maxMessageBytes,
      'grpc.max_send_message_length': -1,
      // Pings find clients that vanished without closing their connection (TCP).
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
    });
    tuneHttp2(this.server, 'construct');
    const { def, service } = cacheProto();
    this.server.addService(service, {
      Export: exportHandler(this.ctx),
      Import: importHandler(this.ctx),
      FetchBlob: fetchBlobHandler(this.ctx),
      Inspect: inspectHandler(this.ctx),
      Copy: copyHandler(this.ctx),
      CopyStream: copyStreamHandler(this.ctx),
    });
    this.health.addTo(this.server);
    new ReflectionService({ ...def, ...healthProto().def }).addToServer(this.server);
  }

  private credentials(a: ListenAddress): grpc.ServerCredentials {
    const tls = this.cfg.tls;
    // A unix socket is guarded by file permissions; TLS is for TCP listeners.
    if (!tls || a.kind === 'unix') return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(
      tls.ca ? readFileSync(tls.ca) : null,
      [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }],
      tls.clientAuth === true,
    );
  }

  async start(): Promise<void> {
    // The embedded store exists from the start, so a first import says "no such tag", not "no such directory".
    await mkdir(this.cfg.root, { recursive: true });
    await removeStaleTempFiles(this.cfg.root); // temp files of a daemon that was killed (item 13)
    const listen = this.cfg.listen.length ? this.cfg.listen : [`unix://${await defaultListenSocket()}`];
    this.checkAuthFor(listen);
    for (const raw of listen) {
      const a = parseAddress(raw);
      if (a.kind === 'unix') await prepareUnixSocket(a.path);
      const port = await new Promise<number>((resolve, reject) =>
        this.server.bindAsync(grpcTarget(a), this.credentials(a), (err, p) => (err ? reject(err) : resolve(p))),
      );
      tuneHttp2(this.server, 'bound');
      guardHeaderBlocks(this.server, (why) => this.ctx.log.error('connection closed', { why }));
      if (a.kind === 'unix') {
        this.sockets.push(a.path);
        await setSocketAccess(a.path, this.cfg.socket);
      }
      this.addresses.push(formatAddress(a.kind === 'tcp' ? { ...a, port } : a));
    }
    if (this.cfg.gateway) {
      this.gateway = new Gateway(this.cfg.gateway, {
        auth: this.ctx.auth,
        backend: this.cfg.backend,
        root: this.cfg.root,
        log: this.ctx.log,
        allowUnauthenticatedTcp: this.cfg.auth.allowUnauthenticatedTcp,
        hmacSecret: this.ctx.auth.keys?.hmacSecret,
      });
      await this.gateway.start();
      const gm = this.gateway.ctx.metrics;
      this.ctx.metrics.extra.push(() => gm.render());
    }
    if (this.cfg.metricsAddr) {
      const m = await this.ctx.metrics.listen(this.cfg.metricsAddr);
      this.metricsServer = m.server;
      this.metricsAddress = m.address;
    }
    this.ctx.log.info('listening', { addresses: this.addresses, metrics: this.metricsAddress ?? null, root: this.cfg.root, tls: !!this.cfg.tls, gateway: this.gateway?.address ?? null });
  }

  /** Refuses TCP without auth unless allowed explicitly, and says in the log which way the daemon runs. */
  private checkAuthFor(listen: string[]): void {
    const a = this.cfg.auth;
    const tcp = listen.filter((raw) => parseAddress(raw).kind === 'tcp');
    if (this.ctx.auth.keys) {
      const { hmacSecret, publicKey } = this.ctx.auth.keys;
      const algs = [...(hmacSecret ? ['HS256'] : []), ...(publicKey ? [algForKey(publicKey)] : [])];
      this.ctx.log.info('auth enabled: every call needs a bearer token', { algorithms: algs, audience: a.audience, tiers: !!this.cfg.tiers });
      return;
    }
    if (tcp.length && !a.allowUnauthenticatedTcp) {
      throw failedPrecondition(
        `refusing to listen on ${tcp.join(', ')} without auth: configure auth (auth.hmacSecretFile or auth.publicKeyFile), ` +
          'or pass --insecure-no-auth-tcp (auth.allowUnauthenticatedTcp: true) to accept unauthenticated calls over TCP',
        { reason: 'auth-required' },
      );
    }
    if (tcp.length) this.ctx.log.info('auth disabled: serving TCP without authentication (insecure-no-auth-tcp); every caller has full access', { tcp });
    else this.ctx.log.info('auth disabled: serving unix sockets only; every local user who can open them has full access');
  }

  /** Graceful stop; a second call returns the same promise. */
  shutdown(graceMs = this.cfg.shutdownGraceMs): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      this.ctx.log.info('shutting down', { grace_ms: graceMs });
      this.health.setAll('NOT_SERVING');
      this.health.endWatches();
      const timer = setTimeout(() => {
        this.ctx.log.info('grace period over: cancelling calls in flight');
        this.server.forceShutdown();
      }, graceMs);
      const gatewayClosed = this.gateway?.close(graceMs).catch(() => {}) ?? Promise.resolve();
      this.server.tryShutdown(async () => {
        clearTimeout(timer);
        await gatewayClosed;
        for (const s of this.sockets) rmSync(s, { force: true });
        if (this.metricsServer) this.metricsServer.close(() => resolve());
        else resolve();
        this.metricsServer?.closeAllConnections();
      });
    });
    return this.stopping;
  }
}
