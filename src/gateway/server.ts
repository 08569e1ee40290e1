// The registry gateway: an HTTP(S) server speaking the OCI distribution API
// in front of one upstream, started and stopped with the daemon. Routes are
// parsed (router.ts), the caller authenticated and authorized on the upstream
// name (auth.ts) before any upstream request, then one handler runs; errors
// become distribution answers in one place (errors.ts). One JSON log line
// per request: tenant, method, route, repository, status, bytes. Never a token.
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { formatAddress, parseAddress, prepareUnixSocket } from '../api/address.js';
import { failedPrecondition } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import type { BackendContext } from '../cache/remote/index.js';
import type { AuthRuntime } from '../server/access.js';
import { scrub } from '../server/auth/audit.js';
import type { Logger } from '../server/log.js';
import { AuthFailure, GatewayAuth } from './auth.js';
import { deleteBlob, getBlob, headBlob } from './blobs.js';
import { parseUpstream, type GatewayConfig } from './config.js';
import { Call, type GatewayContext } from './context.js';
import { DistError, fromError, type NotFoundCode } from './errors.js';
import { listCatalog, listTags } from './lists.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { GatewayMetrics } from './metrics.js';
import { route, type Route } from './router.js';
import { ephemeralSecret, Sealer } from './seal.js';
import { tierOf } from './tiers.js';
import { tokenEndpoint } from './token-endpoint.js';
import { cancelUpload, patchUpload, putUpload, startUpload, uploadStatus } from './uploads.js';
import { LocalUpstream } from './upstream/local.js';
import { RegistryUpstream } from './upstream/registry.js';
import type { Upstream } from './upstream/types.js';

export interface GatewayDeps {
  auth: AuthRuntime;
  /** The daemon's registry settings (hosts, credentials file). */
  backend: BackendContext;
  /** The daemon's root: the embedded store of `upstream: local`. */
  root: string;
  log: Logger;
  /** Auth off: listen beyond loopback anyway (--insecure-no-auth-tcp). */
  allowUnauthenticatedTcp: boolean;
  /** The HMAC secret of auth, when there is one: the default sealing secret. */
  hmacSecret?: Buffer;
}

export function makeUpstream(cfg: GatewayConfig, deps: Pick<GatewayDeps, 'backend' | 'root'>): Upstream {
  const u = parseUpstream(cfg.upstream);
  if (u.kind === 'local') return new LocalUpstream(deps.root);
  return new RegistryUpstream(u.registry!, u.prefix, { hosts: deps.backend.registry?.hosts, dockerConfig: deps.backend.registry?.dockerConfig });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function notFoundFor(r: Route): NotFoundCode {
  if (r.kind === 'blob') return 'BLOB_UNKNOWN';
  if (r.kind === 'manifest') return 'MANIFEST_UNKNOWN';
  if (r.kind === 'upload') return 'BLOB_UPLOAD_UNKNOWN';
  return 'NAME_UNKNOWN';
}

/** The scope a refused request needed, for the challenge: from the request alone. */
function scopeOf(r: Route, method: string): string | undefined {
  if (r.kind === 'catalog') return 'registry:catalog:*';
  if (!('repo' in r)) return undefined;
  const read = (method === 'GET' || method === 'HEAD') && r.kind !== 'upload' && r.kind !== 'upload-start';
  return `repository:${r.repo}:${read ? 'pull' : 'pull,push'}`;
}

async function dispatch(ctx: GatewayContext, call: Call, r: Route): Promise<void> {
  const m = call.method;
  if (r.kind === 'token') return tokenEndpoint(ctx, call);
  call.identity = ctx.auth.authenticate(call.header('authorization'));
  if (r.kind === 'ping') return call.sendJson(200, {});
  if (r.kind === 'catalog') {
    if (m !== 'GET') throw new DistError('UNSUPPORTED');
    if (ctx.auth.enabled && !call.identity) throw new AuthFailure(false, 'catalog needs a token');
    return listCatalog(ctx, call);
  }
  const repo = r.repo;
  call.repo = repo;
  const read = m === 'GET' || m === 'HEAD';
  const upload = r.kind === 'upload' || r.kind === 'upload-start';
  ctx.auth.require(call.identity, read && !upload ? 'pull' : 'push', repo);
  switch (r.kind) {
    case 'manifest':
      if (read) return getManifest(ctx, call, repo, r.ref);
      if (m === 'PUT') return putManifest(ctx, call, repo, r.ref);
      if (m === 'DELETE') return deleteManifest(ctx, call, repo, r.ref);
      break;
    case 'blob':
      if (!isDigest(r.digest)) throw new DistError('DIGEST_INVALID', 'malformed digest');
      if (m === 'HEAD') return headBlob(ctx, call, repo, r.digest);
      if (m === 'GET') return getBlob(ctx, call, repo, r.digest);
      if (m === 'DELETE') return deleteBlob(ctx, call, repo, r.digest);
      break;
    case 'upload-start':
      if (m === 'POST') return startUpload(ctx, call, repo);
      break;
    case 'upload':
      if (m === 'GET') return uploadStatus(ctx, call, repo, r.id);
      if (m === 'PATCH') return patchUpload(ctx, call, repo, r.id);
      if (m === 'PUT') return putUpload(ctx, call, repo, r.id);
      if (m === 'DELETE') return cancelUpload(ctx, call, repo, r.id);
      break;
    case 'tags':
      if (m === 'GET') return listTags(ctx, call, repo);
      break;
  }
  throw new DistError('UNSUPPORTED', `${m} is not supported here`);
}

export class Gateway {
  readonly ctx: GatewayContext;
  address?: string;
  private server?: http.Server;
  private socketPath?: string;

  constructor(
    readonly cfg: GatewayConfig,
    private readonly deps: GatewayDeps,
  ) {
    const upstream = makeUpstream(cfg, deps);
    let secret: Buffer;
    if (cfg.secretFile) secret = Buffer.from(readFileSync(cfg.secretFile, 'utf8').trim(), 'utf8');
    else if (deps.hmacSecret) secret = deps.hmacSecret;
    else {
      secret = ephemeralSecret();
      deps.log.info('gateway: no gateway.secretFile or auth HMAC secret: upload locations and gateway tokens are valid on this process only');
    }
    const sealer = new Sealer(secret);
    this.ctx = {
      cfg,
      upstream,
      sealer,
      auth: new GatewayAuth(
        deps.auth,
        sealer,
        (repo) => upstream.nameOf(repo),
        (tenant, repo) => {
          const g = tierOf(deps.auth.tiers, tenant, upstream, repo)?.global;
          return g === undefined ? [] : [g];
        },
      ),
      log: deps.log,
      metrics: new GatewayMetrics(cfg.metricsRepositoryLabel),
      tiers: deps.auth.tiers,
    };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const call = new Call(req, res);
    const started = process.hrtime.bigint();
    const r = route(call.url.pathname);
    call.route = typeof r === 'object' ? r.kind : 'none';
    let err: DistError | undefined;
    let authError: string | undefined;
    try {
      if (r === undefined) throw new DistError('NAME_UNKNOWN', 'no such route');
      if (r === 'name-invalid') throw new DistError('NAME_INVALID');
      if (r === 'digest-invalid') throw new DistError('DIGEST_INVALID', 'malformed digest');
      await dispatch(this.ctx, call, r);
    } catch (e) {
      if (e instanceof AuthFailure) {
        authError = e.why;
        const challenge =
          typeof r === 'object' && r.kind === 'token'
            ? 'Basic realm="bkcache-gateway"'
            : this.ctx.auth.challenge(call.origin(!!this.cfg.tls), typeof r === 'object' ? scopeOf(r, call.method) : undefined, e.insufficient);
        err = new DistError('UNAUTHORIZED', e.why, { 'www-authenticate': challenge });
      } else err = fromError(e, typeof r === 'object' ? notFoundFor(r) : 'NAME_UNKNOWN');
      if (!res.headersSent) {
        if (!req.readableEnded) call.discardBody();
        call.sendError(err);
      } else res.destroy();
    }
    const status = call.status || (err?.status ?? 0);
    this.ctx.metrics.request(call.route, call.method, status);
    this.ctx.metrics.policy.observe(call, status);
    this.ctx.metrics.addBytes('received', call.bytesIn);
    this.ctx.metrics.addBytes('sent', call.bytesOut);
    const line: Record<string, unknown> = {
      surface: 'gateway',
      tenant: call.tenant,
      method: call.method,
      route: call.route,
      repository: call.repo ?? null,
      status,
      bytes: call.bytesIn + call.bytesOut,
      duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e6),
    };
    if (call.identity?.tokenId) line.token_id = call.identity.tokenId;
    if (authError) line.auth_error = authError;
    if (err && err.status >= 400) {
      line.code = err.code;
      if (err.log) line.error = err.log.split('\n')[0];
    }
    const safe = scrub(line) as Record<string, unknown>;
    if (err && err.status >= 500) this.deps.log.error('gateway call', safe);
    else this.deps.log.info('gateway call', safe);
  }

  async start(): Promise<string> {
    const a = parseAddress(this.cfg.listen);
    if (a.kind === 'tcp' && !this.ctx.auth.enabled && !isLoopback(a.host) && !this.deps.allowUnauthenticatedTcp) {
      throw failedPrecondition(
        `refusing to serve the gateway on ${this.cfg.listen} without auth: use a loopback address or a unix socket, configure auth, ` +
          'or pass --insecure-no-auth-tcp (auth.allowUnauthenticatedTcp: true)',
        { reason: 'auth-required' },
      );
    }
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        this.deps.log.error('gateway: unexpected failure', { error: String((e as Error)?.message ?? e) });
        res.destroy();
      });
    };
    const tls = this.cfg.tls;
    // Request and response stream buffers of one socket read (64 KiB), not more: chunk sizes come
    // from the socket either way, and every open transfer holds up to this much in each direction,
    // so it bounds memory with many concurrent clients.
    const opts = { highWaterMark: 64 << 10 };
    const server = tls ? https.createServer({ ...opts, cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler) : http.createServer(opts, handler);
    // Blob uploads may take long; slow headers may not.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 30_000;
    // A connection silent this long (a stalled body, an idle socket) is closed; a flowing upload never is.
    server.setTimeout(120_000, (socket) => socket.destroy());
    if (a.kind === 'unix') await prepareUnixSocket(a.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (a.kind === 'unix') server.listen(a.path, () => resolve());
      else server.listen(a.port, a.host.replace(/^\[|\]$/g, ''), () => resolve());
    });
    this.server = server;
    if (a.kind === 'unix') {
      this.socketPath = a.path;
      this.address = formatAddress(a);
    } else {
      const bound = server.address() as AddressInfo;
      this.address = formatAddress({ kind: 'tcp', host: a.host, port: bound.port });
    }
    return this.address;
  }

  /** Stops accepting, lets requests in flight end within `graceMs`, then cuts them. */
  async close(graceMs = 10_000): Promise<void> {
    const s = this.server;
    if (s) {
      const done = new Promise<void>((resolve) => s.close(() => resolve()));
      s.closeIdleConnections();
      const t = setTimeout(() => s.closeAllConnections(), graceMs);
      await done;
      clearTimeout(t);
    }
    if (this.socketPath) rmSync(this.socketPath, { force: true });
    await this.ctx.upstream.close();
  }
}
