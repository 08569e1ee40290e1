// The HTTP layer under the registry store: undici keep-alive pools, auth,
// retries, redirects and typed errors, in that order of wrapping:
//   send() = retry( authorize( follow-redirects( one request ) ) )
// One client can serve many stores; sharing it shares connections, tokens
// and the per-host transfer limit.
import type { Readable } from 'node:stream';
import { Agent } from 'undici';
import { BkError } from '../../errors.js';
import { readAll } from '../content.js';
import { Authorizer } from './auth/authorizer.js';
import { parseChallenges } from './auth/challenge.js';
import type { CredentialProvider } from './auth/credentials.js';
import type { TokenHttp } from './auth/token.js';
import { registryError, RegistryError } from './errcode/index.js';
import { safeUrl } from './hosts.js';
import { isLoopbackHost, isTlsFailure, tlsError } from './plain-http.js';
import { Semaphore } from '../../semaphore.js';
import { DEFAULT_RETRY, parseRetryAfter, withRetry, type RetryOptions } from './retry/policy.js';

export type Body = string | Buffer | Uint8Array | Readable | null;

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: URL;
  /** Registry name for credential lookup ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** Token scopes this request needs, e.g. "repository:a/b:pull". */
  scopes: readonly string[];
  headers?: Record<string, string>;
  /**
   * Makes the body. Called again for each resend (after a 401 or a retry),
   * so a stream body must come from a factory that can reopen it, or the
   * request must say `replayable: false`.
   */
  body?: () => Body;
  /** False for one-shot bodies: no auth resend and no retry. */
  replayable?: boolean;
  /** Statuses that count as an answer; anything else becomes a typed error. */
  expect: readonly number[];
  /** What is being done, for messages ("HEAD blob registry:h/r@sha256:..."). Credential-free. */
  what: string;
  signal?: AbortSignal;
  /** Default true. */
  retry?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump(): Promise<void>; text(): Promise<string> };
  /** The URL that answered (after redirects). */
  url: URL;
}

export function header(res: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export interface RegistryClientOptions {
  /** Where credentials come from; anonymous when absent. */
  credentials?: CredentialProvider;
  retry?: Partial<RetryOptions>;
  userAgent?: string;
  connectTimeoutMs?: number;
  /** Waiting for response headers; generous because registries answer a PUT only after the whole blob. */
  headersTimeoutMs?: number;
  /** Longest silence while a response body streams. */
  bodyTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Sockets per origin in the keep-alive pool. */
  connectionsPerHost?: number;
}

const MAX_REDIRECTS = 5;
const ERROR_BODY_LIMIT = 64 << 10;

export class RegistryClient {
  readonly retry: RetryOptions;
  private readonly agent: Agent;
  private readonly auth: Authorizer;
  private readonly limits = new Map<string, Semaphore>();
  private readonly userAgent: string;
  /** Loopback hosts found to serve plain HTTP. */
  private readonly plainHttp = new Set<string>();

  constructor(opts: RegistryClientOptions = {}) {
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.userAgent = opts.userAgent ?? 'bkcache';
    this.agent = new Agent({
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
      connections: opts.connectionsPerHost ?? 16,
      connect: { timeout: opts.connectTimeoutMs ?? 30_000 },
      headersTimeout: opts.headersTimeoutMs ?? 300_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 120_000,
    });
    this.auth = new Authorizer(opts.credentials ?? (async () => undefined), this.tokenHttp);
  }

  /** The transfer limiter for a host; the first caller's size wins. */
  limiter(host: string, size: number): Semaphore {
    let s = this.limits.get(host);
    if (!s) {
      s = new Semaphore(size);
      this.limits.set(host, s);
    }
    return s;
  }

  /** Sends with auth, redirects and (unless disabled or one-shot) retries. */
  send(req: RegistryRequest): Promise<RegistryResponse> {
    const once = () => this.sendAuthorized(req);
    if (req.retry === false || req.replayable === false) return once();
    return withRetry(once, this.retry, { signal: req.signal });
  }

  private async sendAuthorized(req: RegistryRequest): Promise<RegistryResponse> {
    const host = req.url.host;
    let authz = await this.auth.authorization(host, req.registry, req.scopes);
    let res = await this.sendFollowing(req, authz);
    if (res.status === 401 && !req.expect.includes(401)) {
      const challenges = parseChallenges(res.headers['www-authenticate']);
      await res.body.dump().catch(() => {});
      // A one-shot body is gone: the caller restarts the whole operation,
      // which goes out with the now-known scheme.
      if (req.replayable === false) throw await this.auth.finalError(req.registry, challenges, req.what);
      authz = await this.auth.reauthorize(host, req.registry, challenges, req.scopes, req.what);
      res = await this.sendFollowing(req, authz);
      if (res.status === 401) {
        const again = parseChallenges(res.headers['www-authenticate']);
        await res.body.dump().catch(() => {});
        this.auth.forget(host, req.scopes);
        throw await this.auth.finalError(req.registry, again.length ? again : challenges, req.what);
      }
    }
    if (!req.expect.includes(res.status)) throw await errorFrom(res, req.what);
    return res;
  }

  /** One request, following redirects for reads; auth is only sent to the same origin. */
  private async sendFollowing(req: RegistryRequest, authz: string | undefined): Promise<RegistryResponse> {
    let url = req.url;
    const canRedirect = req.method === 'GET' || req.method === 'HEAD';
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      // Blob GETs redirect to storage (S3, GCS) that must not see registry tokens.
      if (authz && url.origin === req.url.origin) headers.authorization = authz;
      const res = await this.raw(req.method, url, headers, req.body ? req.body() : null, req.signal, req.what);
      const loc = header(res, 'location');
      if (canRedirect && [301, 302, 303, 307, 308].includes(res.status) && loc && hop < MAX_REDIRECTS) {
        await res.body.dump().catch(() => {});
        url = new URL(loc, url);
        continue;
      }
      return res;
    }
  }

  /** A single undici request; connection failures become retryable UNAVAILABLE errors. */
  private async raw(method: string, url: URL, headers: Record<string, string>, body: Body, signal: AbortSignal | undefined, what: string): Promise<RegistryResponse> {
    // A loopback registry that turned out to speak plain HTTP (plain-http.ts) is asked over HTTP from then on.
    if (url.protocol === 'https:' && this.plainHttp.has(url.host)) url = Object.assign(new URL(url), { protocol: 'http:' });
    try {
      const r = await this.agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: method as 'GET',
        headers,
        body: body ?? undefined,
        signal,
      });
      return { status: r.statusCode, headers: r.headers, body: r.body as unknown as RegistryResponse['body'], url };
    } catch (err) {
      if (err instanceof BkError) throw err;
      // A body stream that failed (e.g. our own digest check) is the real error.
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof BkError) throw cause;
      if (signal?.aborted) throw new BkError('CANCELLED', `${what}: cancelled`, { cause: err });
      if (url.protocol === 'https:' && isTlsFailure(err)) {
        if (!isLoopbackHost(url.host)) throw tlsError(err, url.host, what);
        this.plainHttp.add(url.host);
        return this.raw(method, url, headers, body, signal, what);
      }
      const code = (err as { code?: string }).code;
      throw new BkError('UNAVAILABLE', `${what}: ${(err as Error).message}${code ? ` (${code})` : ''}`, { cause: err, reason: 'network' });
    }
  }

  /** Token endpoint HTTP: same pools, same retry rules, no registry auth. */
  private readonly tokenHttp: TokenHttp = async ({ method, url, headers, body }) => {
    const attempt = async () => {
      const res = await this.raw(method, url, { 'user-agent': this.userAgent, ...headers }, body ?? null, undefined, `token request to ${safeUrl(url)}`);
      if (res.status === 429 || res.status >= 500) throw await errorFrom(res, `token request to ${safeUrl(url)}`);
      const text = await readAll(res.body, ERROR_BODY_LIMIT, 'token response').then((b) => b.toString('utf8'));
      return { status: res.status, text };
    };
    return withRetry(attempt, this.retry);
  };

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Reads a failed response's body (bounded) into a typed error. */
export async function errorFrom(res: RegistryResponse, what: string): Promise<RegistryError> {
  let text = '';
  try {
    text = (await readAll(res.body, ERROR_BODY_LIMIT, 'error body')).toString('utf8');
  } catch {
    res.body.destroy();
  }
  const err = registryError(res.status, text, what);
  const ra = parseRetryAfter(header(res, 'retry-after'));
  if (ra !== undefined) err.retryAfterMs = ra;
  return err;
}
