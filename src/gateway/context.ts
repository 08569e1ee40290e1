// What every gateway handler shares, and one request's state: who called,
// which repository, bytes both ways, and how to answer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../server/auth/policy.js';
import type { TierSettings } from '../server/auth/tiers.js';
import type { Logger } from '../server/log.js';
import type { GatewayAuth } from './auth.js';
import type { GatewayConfig } from './config.js';
import { DistError } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import type { Sealer } from './seal.js';
import type { Upstream } from './upstream/types.js';

export interface GatewayContext {
  cfg: GatewayConfig;
  upstream: Upstream;
  auth: GatewayAuth;
  sealer: Sealer;
  log: Logger;
  metrics: GatewayMetrics;
  tiers?: TierSettings;
}

/** What a request answered without its body may still send of it before its connection is closed. */
const DISCARD_LIMIT = 8 << 20;

export const API_VERSION_HEADER = { 'docker-distribution-api-version': 'registry/2.0' };

export class Call {
  identity: Identity | undefined;
  repo: string | undefined;
  route = 'unknown';
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  /** Aborted when the client goes away, so upstream requests stop too. */
  readonly signal: AbortSignal;
  readonly url: URL;
  private readonly abort = new AbortController();

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    this.signal = this.abort.signal;
    // Only the path and query matter; the host is never trusted for routing.
    this.url = new URL(req.url ?? '/', 'http://gateway.invalid');
    res.once('close', () => {
      if (!res.writableFinished) this.abort.abort();
    });
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  get tenant(): string | null {
    return this.identity?.tenant ?? null;
  }

  /** The base URL clients reach us at (realm of the challenge), from the request they made. */
  origin(tls: boolean): string {
    const host = this.req.headers.host && /^[A-Za-z0-9.:[\]-]+$/.test(this.req.headers.host) ? this.req.headers.host : 'localhost';
    return `${tls ? 'https' : 'http'}://${host}`;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }

  /** Content-Length of the request, undefined when absent (chunked); NaN-safe. */
  contentLength(): number | undefined {
    const v = this.header('content-length');
    if (v === undefined) return undefined;
    if (!/^\d{1,15}$/.test(v)) throw new DistError('SIZE_INVALID', 'bad Content-Length');
    return Number(v);
  }

  /**
   * The whole request body, at most `limit` bytes (manifests, token forms). Over the limit it is
   * SIZE_INVALID with the request left open, not destroyed (as breaking out of a for-await would):
   * the client still gets its answer, and server.ts reads on only so far before it closes the connection.
   */
  readBody(limit: number, what: string): Promise<Buffer> {
    const req = this.req;
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      const done = (err?: Error) => {
        req.off('data', onData).off('end', onEnd).off('error', done).off('close', onClose);
        if (err) reject(err);
        else resolve(Buffer.concat(chunks, n));
      };
      const onData = (c: Buffer) => {
        n += c.length;
        if (n <= limit) return void chunks.push(c);
        req.pause();
        done(new DistError('SIZE_INVALID', `${what} is larger than the ${limit}-byte limit`));
      };
      const onEnd = () => done();
      const onClose = () => done(new DistError('UNAVAILABLE', `the client went away while sending the ${what}`));
      req.on('data', onData).once('end', onEnd).once('error', done).once('close', onClose);
    });
  }

  /**
   * Reads on (discarding) the body of a request answered without it, so a small body leaves the
   * connection reusable and a client still sending sees the answer rather than a reset; but only
   * DISCARD_LIMIT bytes: a declared 5 GB body, or an endless chunked one, is not read to its end.
   */
  discardBody(): void {
    let left = DISCARD_LIMIT;
    this.req.on('data', (c: Buffer) => {
      left -= c.length;
      if (left < 0) this.req.socket.destroy();
    });
    this.req.resume();
  }

  /** Whether the request carries a body. */
  hasBody(): boolean {
    const n = this.contentLength();
    return n !== undefined ? n > 0 : this.header('transfer-encoding') !== undefined;
  }

  /** Sends a complete answer; HEAD answers carry the headers (Content-Length too) but no body. */
  send(status: number, headers: Record<string, string>, body?: string | Buffer): void {
    this.status = status;
    const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h: Record<string, string> = { ...API_VERSION_HEADER, ...headers };
    if (b && h['content-length'] === undefined) h['content-length'] = String(b.length);
    if (!b && h['content-length'] === undefined) h['content-length'] = '0';
    this.res.writeHead(status, h);
    if (b && this.method !== 'HEAD') {
      this.bytesOut += b.length;
      this.res.end(b);
    } else this.res.end();
  }

  sendJson(status: number, value: unknown, headers: Record<string, string> = {}): void {
    this.send(status, { 'content-type': 'application/json', ...headers }, JSON.stringify(value));
  }

  sendError(e: DistError, headers: Record<string, string> = {}): void {
    this.send(e.status, { 'content-type': 'application/json; charset=utf-8', ...e.headers, ...headers }, e.body());
  }
}

