// The HTTP layer under the registry store: undici keep-alive pools, auth,
// retries, redirects and typed errors, in that order of wrapping:
//   send() = retry( authorize( follow-redirects( one request ) ) )
// One client can serve many stores; sharing it shares connections, tokens
// and the per-host transfer limit.
import type { Readable } from 'node:stream';
import { Agent } from 'undici';
import { BkError } from '../../errors.js';
import { discard, readAll } from '../content.js';
import { Authorizer } from './auth/authorizer.js';
import { parseChallenges } from './auth/challenge.js';
import type { CredentialProvider } from './auth/credentials.js';
import type { TokenHttp } from './auth/token.js';
import { registryError, RegistryError } from './errcode/index.js';
import { DEFAULT_CONNECTIONS_PER_HOST, safeUrl } from './hosts.js';
import { isLoopbackHost, isTlsFailure, tlsError } from './plain-http.js';
import { apiHost } from '../../oci/reference.js';
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
  /** The last request of a blob upload: its answer may wait for the commit (timeouts.commitMs). */
  commit?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump(opts?: { signal?: AbortSignal; limit?: number }): Promise<unknown>; text(): Promise<string> };
  /** The URL that answered (after redirects). */
  url: URL;
  method: RegistryRequest['method'];
}

export function header(res: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * How long the registry client waits, in every phase. The defaults are far
 * above what a working registry needs (even behind a slow link) and far
 * below what a stuck or malicious one would like.
 */
export interface RegistryTimeouts {
  /** TCP (and TLS) connect. */
  connectMs: number;
  /** Waiting for response headers once the request is sent. */
  headersMs: number;
  /**
   * Waiting for the answer to a blob upload's last request: the registry
   * answers only after it committed the blob, which on object storage is a
   * server-side copy of the whole blob.
   */
  commitMs: number;
  /** Longest silence inside a response body; also the window of the throughput check. */
  idleMs: number;
  /** A blob download slower than this over `idleMs` is dropped and resumed. */
  minBytesPerSecond: number;
  /** A manifest read (HEAD or GET, retries and body included), from start to end. */
  manifestMs: number;
  /** Reopens of one blob download in all (resume.ts). */
  maxResumes: number;
}

export const DEFAULT_TIMEOUTS: RegistryTimeouts = {
  connectMs: 30_000,
  headersMs: 30_000,
  commitMs: 600_000,
  idleMs: 60_000,
  minBytesPerSecond: 1024,
  manifestMs: 60_000,
  maxResumes: 16,
};

export interface RegistryClientOptions {
  /** Where credentials come from; anonymous when absent. */
  credentials?: CredentialProvider;
  retry?: Partial<RetryOptions>;
  timeouts?: Partial<RegistryTimeouts>;
  userAgent?: string;
  keepAliveTimeoutMs?: number;
  /** Sockets per origin in the keep-alive pool. */
  connectionsPerHost?: number;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ERROR_BODY_LIMIT = 64 << 10;

export class RegistryClient {
  readonly retry: RetryOptions;
  readonly timeouts: RegistryTimeouts;
  private readonly agent: Agent;
  private readonly auth: Authorizer;
  private readonly limits = new Map<string, Semaphore>();
  private readonly userAgent: string;
  /** Loopback hosts found to serve plain HTTP. */
  private readonly plainHttp = new Set<string>();

  constructor(opts: RegistryClientOptions = {}) {
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.timeouts = validTimeouts({ ...DEFAULT_TIMEOUTS, ...definedOnly(opts.timeouts ?? {}) });
    this.userAgent = opts.userAgent ?? 'bkcache';
    this.agent = new Agent({
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
      connections: opts.connectionsPerHost ?? DEFAULT_CONNECTIONS_PER_HOST,
      connect: { timeout: this.timeouts.connectMs },
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.idleMs,
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

  /**
   * Reads off the rest of a response we have what we need from (so the
   * connection can be reused), for at most timeouts.headersMs: a body
   * trickled a byte at a time is cut off instead of waited for.
   */
  async finish(res: RegistryResponse): Promise<void> {
    // An answer to a HEAD has no body (undici reads none): nothing to wait
    // for, so no deadline timer per HEAD (verify sends one per blob).
    if (res.method === 'HEAD') return void (await res.body.dump().catch(() => {}));
    await res.body.dump({ signal: AbortSignal.timeout(this.timeouts.headersMs) }).catch(() => {});
  }

  /** Sends with auth, redirects and (unless disabled or one-shot) retries. */
  send(req: RegistryRequest): Promise<RegistryResponse> {
    const once = () => this.sendAuthorized(req);
    if (req.retry === false || req.replayable === false) return once();
    return withRetry(once, this.retry, { signal: req.signal });
  }

  private async sendAuthorized(req: RegistryRequest): Promise<RegistryResponse> {
    const host = req.url.host;
    // Credentials go to the registry's own host only. A URL the registry
    // hands us (an upload Location) may name any host; that host gets no
    // Authorization header and no token fetched with the user's credentials
    // (containerd's pusher drops its authorizer the same way when an upload
    // moves to another host).
    const own = isRegistryHost(req.url, req.registry);
    let authz = own ? await this.auth.authorization(host, req.registry, req.scopes) : undefined;
    let res = await this.sendFollowing(req, authz);
    if (res.status === 401 && !req.expect.includes(401)) {
      const challenges = parseChallenges(res.headers['www-authenticate']);
      await this.finish(res);
      if (!own) {
        throw new BkError('UNAUTHENTICATED', `${req.what}: ${safeUrl(req.url)} asks for credentials, which go to ${apiHost(req.registry)} only`, {
          reason: 'foreign-host',
        });
      }
      // A one-shot body is gone: the caller restarts the whole operation,
      // which goes out with the now-known scheme.
      if (req.replayable === false) throw await this.auth.finalError(req.registry, challenges, req.what);
      authz = await this.auth.reauthorize(req.url, req.registry, challenges, req.scopes, req.what);
      res = await this.sendFollowing(req, authz);
      if (res.status === 401) {
        const again = parseChallenges(res.headers['www-authenticate']);
        await this.finish(res);
        this.auth.forget(host, req.scopes);
        throw await this.auth.finalError(req.registry, again.length ? again : challenges, req.what);
      }
    }
    if (!req.expect.includes(res.status)) throw await errorFrom(res, req.what, this.timeouts.headersMs);
    return res;
  }

  /**
   * One request, following redirects for reads; auth is only sent to the
   * same origin. More than MAX_REDIRECTS hops (a loop) is a final
   * UNAVAILABLE at once: asking again would loop again.
   */
  private async sendFollowing(req: RegistryRequest, authz: string | undefined): Promise<RegistryResponse> {
    let url = req.url;
    const canRedirect = req.method === 'GET' || req.method === 'HEAD';
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      // Blob GETs redirect to storage (S3, GCS) that must not see registry tokens.
      if (authz && url.origin === req.url.origin) headers.authorization = authz;
      const headersMs = req.commit ? this.timeouts.commitMs : this.timeouts.headersMs;
      const res = await this.raw(req.method, url, headers, req.body ? req.body() : null, req.signal, req.what, headersMs);
      const loc = header(res, 'location');
      if (!canRedirect || !REDIRECTS.has(res.status) || !loc) return res;
      await this.finish(res);
      try {
        url = new URL(loc, url);
      } catch {
        throw new BkError('UNAVAILABLE', `${req.what}: registry redirected to an invalid location`, { reason: 'bad-response' });
      }
      if (hop >= MAX_REDIRECTS) {
        throw new BkError('UNAVAILABLE', `${req.what}: more than ${MAX_REDIRECTS} redirects (last to ${safeUrl(url)})`, { reason: 'too-many-redirects' });
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new BkError('UNAVAILABLE', `${req.what}: registry redirected to a ${url.protocol} URL`, { reason: 'bad-response' });
      }
    }
  }

  /** A single undici request; connection failures become retryable UNAVAILABLE errors. */
  private async raw(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Body,
    signal: AbortSignal | undefined,
    what: string,
    headersMs = this.timeouts.headersMs,
  ): Promise<RegistryResponse> {
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
        headersTimeout: headersMs,
        // undici closes the connection after every HEAD unless told not to
        // (nodejs/undici#258: servers that wrongly send a body). A registry
        // HEAD per blob (verify, push's existence checks) then pays a TCP
        // connect and the server's connection setup each: measured on the
        // local distribution registry, 10 000 HEADs took 19.8 s with 5.2 s
        // of our CPU against 8.4 s and 1.0 s kept alive. Registries are Go,
        // Java or nginx servers that send no HEAD body; one that did would
        // garble the next answer on that socket, a parse error we retry.
        reset: method === 'HEAD' ? false : undefined,
      });
      return { status: r.statusCode, headers: r.headers, body: r.body as unknown as RegistryResponse['body'], url, method: method as RegistryRequest['method'] };
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
      if (res.status === 429 || res.status >= 500) throw await errorFrom(res, `token request to ${safeUrl(url)}`, this.timeouts.headersMs);
      const text = await readAll(res.body, ERROR_BODY_LIMIT, 'token response', this.timeouts.headersMs).then((b) => b.toString('utf8'));
      return { status: res.status, text };
    };
    return withRetry(attempt, this.retry);
  };

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Reads a failed response's body (bounded in size and time) into a typed error. */
export async function errorFrom(res: RegistryResponse, what: string, deadlineMs: number): Promise<RegistryError> {
  let text = '';
  try {
    text = (await readAll(res.body, ERROR_BODY_LIMIT, 'error body', deadlineMs)).toString('utf8');
  } catch {
    discard(res.body);
  }
  const err = registryError(res.status, text, what);
  const ra = parseRetryAfter(header(res, 'retry-after'));
  if (ra !== undefined) err.retryAfterMs = ra;
  return err;
}

/**
 * Whether `url` is on the registry's own API host, compared the way URLs
 * write hosts: "Reg.Example:443" in a reference is "reg.example" in an
 * https URL.
 */
export function isRegistryHost(url: URL, registry: string): boolean {
  try {
    return new URL(`${url.protocol}//${apiHost(registry)}`).host === url.host;
  } catch {
    return false;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Durations must be positive; a throughput floor or resume cap of 0 is allowed (off / never resume). */
function validTimeouts(t: RegistryTimeouts): RegistryTimeouts {
  const zeroOk = new Set(['minBytesPerSecond', 'maxResumes']);
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isFinite(v) || v < 0 || (v === 0 && !zeroOk.has(k))) {
      throw new BkError('INVALID_ARGUMENT', `registry timeouts: ${k} must be a positive number, got ${v}`, { reason: 'invalid-option' });
    }
  }
  return t;
}
