// Bearer tokens from a registry's token service.
// GET flow: https://distribution.github.io/distribution/spec/auth/token/
// POST (OAuth2) flow: https://distribution.github.io/distribution/spec/auth/oauth/
import { BkError } from '../../../errors.js';
import { registryError } from '../errcode/index.js';
import { safeUrl } from '../hosts.js';
import { isLocalHost, isLoopbackHost } from '../plain-http.js';
import type { Challenge } from './challenge.js';
import { basicHeader, hasBasic, type Credentials } from './credentials.js';

/** Minimal HTTP for the token endpoint, supplied by the client (retries, TLS, pools). */
export type TokenHttp = (req: {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
}) => Promise<{ status: number; text: string }>;

export interface Token {
  token: string;
  /** Epoch ms after which we stop using it (a margin before real expiry). */
  usableUntil: number;
}

// The spec's default lifetime when the service omits expires_in.
const DEFAULT_EXPIRES_IN_S = 60;
const CLIENT_ID = 'bkcache';

/** When to stop using a token: 10% of its lifetime (5 s at least) before it expires. */
export function usableUntil(expiresInS: number, now = Date.now()): number {
  const life = expiresInS > 0 ? expiresInS : DEFAULT_EXPIRES_IN_S;
  const margin = Math.max(5, life * 0.1);
  return now + Math.max(0, life - margin) * 1000;
}

function parseTokenBody(text: string, where: string): { token: string; expiresIn: number } {
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new BkError('UNAUTHENTICATED', `${where}: token response is not JSON`, { reason: 'bad-token-response' });
  }
  // Spec: `token`, with `access_token` as the OAuth2-compatible alias.
  const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
  if (!token) throw new BkError('UNAUTHENTICATED', `${where}: token response has no token`, { reason: 'bad-token-response' });
  // It goes into an Authorization header: a control character or space
  // would fail every request as a transport error, retried with the same
  // token (RFC 6750 §2.1: b64token; visible ASCII is what we insist on).
  if (!/^[\x21-\x7e]+$/.test(token)) throw new BkError('UNAUTHENTICATED', `${where}: token response has a token that cannot be sent`, { reason: 'bad-token-response' });
  const expiresIn = typeof doc.expires_in === 'number' ? doc.expires_in : DEFAULT_EXPIRES_IN_S;
  return { token, expiresIn };
}

function realmOf(ch: Challenge): URL {
  const realm = ch.params.realm;
  try {
    if (!realm) throw new Error('no realm');
    const u = new URL(realm);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('bad scheme');
    return u;
  } catch {
    throw new BkError('UNAUTHENTICATED', `registry sent a Bearer challenge without a usable realm`, { reason: 'bad-challenge' });
  }
}

/**
 * Refuses a Bearer realm that would carry the user's credentials somewhere
 * the registry itself is not: from an https registry to a plain-HTTP realm
 * (credentials in clear to anyone on the path), or from a registry on the
 * network to a realm on this machine or its link (127.0.0.1, the cloud
 * metadata address 169.254.169.254). The realm may be another host: Docker
 * Hub's is auth.docker.io.
 */
export function checkRealm(ch: Challenge, registryUrl: URL, what: string): void {
  if (ch.scheme !== 'bearer') return;
  const realm = realmOf(ch);
  if (registryUrl.protocol === 'https:' && realm.protocol === 'http:' && !isLoopbackHost(realm.host)) {
    throw new BkError('UNAUTHENTICATED', `${what}: the registry's token realm ${safeUrl(realm)} is plain HTTP, the registry is https`, { reason: 'bad-challenge' });
  }
  if (isLocalHost(realm.host) && !isLocalHost(registryUrl.host)) {
    throw new BkError('UNAUTHENTICATED', `${what}: the registry's token realm ${safeUrl(realm)} is on this machine or its link, the registry is not`, {
      reason: 'bad-challenge',
    });
  }
}

function failure(status: number, text: string, where: string): BkError {
  // The token service's own 401 means our credentials were refused.
  if (status === 401) return new BkError('UNAUTHENTICATED', `${where}: credentials rejected (HTTP 401)`, { reason: 'token-denied' });
  return registryError(status, text, where);
}

/**
 * Gets a token for `scopes`. With a username/password (or none) it does the
 * GET flow first, the way the docker CLI does, and falls back to the OAuth2
 * POST form when the service does not serve GET (404/405/400). With an
 * identity token only the POST refresh_token grant can use it.
 */
export async function fetchToken(http: TokenHttp, ch: Challenge, scopes: readonly string[], creds: Credentials | undefined): Promise<Token> {
  const realm = realmOf(ch);
  const where = `token request to ${safeUrl(realm)}`;
  const service = ch.params.service;

  if (creds?.identityToken) return postToken(http, realm, where, service, scopes, { grant_type: 'refresh_token', refresh_token: creds.identityToken });

  const url = new URL(realm);
  if (service) url.searchParams.set('service', service);
  for (const s of scopes) url.searchParams.append('scope', s);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (hasBasic(creds)) {
    headers.authorization = basicHeader(creds);
    url.searchParams.set('account', creds.username);
  }
  const res = await http({ method: 'GET', url, headers });
  if (res.status === 200) {
    const { token, expiresIn } = parseTokenBody(res.text, where);
    return { token, usableUntil: usableUntil(expiresIn) };
  }
  if (hasBasic(creds) && (res.status === 404 || res.status === 405 || res.status === 400)) {
    return postToken(http, realm, where, service, scopes, { grant_type: 'password', username: creds.username, password: creds.password });
  }
  throw failure(res.status, res.text, where);
}

async function postToken(
  http: TokenHttp,
  realm: URL,
  where: string,
  service: string | undefined,
  scopes: readonly string[],
  grant: Record<string, string>,
): Promise<Token> {
  const form = new URLSearchParams({ ...grant, client_id: CLIENT_ID });
  if (service) form.set('service', service);
  // OAuth2 scopes are one space-separated parameter (RFC 6749 §3.3).
  if (scopes.length) form.set('scope', scopes.join(' '));
  const res = await http({
    method: 'POST',
    url: realm,
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: 'application/json' },
    body: form.toString(),
  });
  if (res.status !== 200) throw failure(res.status, res.text, where);
  const { token, expiresIn } = parseTokenBody(res.text, where);
  return { token, usableUntil: usableUntil(expiresIn) };
}

/**
 * Tokens by (host, realm, service, scopes), reused until near expiry.
 * Concurrent requests for the same key share one fetch, so a burst of blob
 * pushes does not become a burst of token requests.
 */
export class TokenCache {
  private readonly tokens = new Map<string, Token>();
  private readonly inflight = new Map<string, Promise<Token>>();

  static key(host: string, ch: Challenge, scopes: readonly string[]): string {
    return [host, ch.params.realm ?? '', ch.params.service ?? '', ...scopes].join('|');
  }

  get(key: string, now = Date.now()): string | undefined {
    const t = this.tokens.get(key);
    if (t && t.usableUntil > now) return t.token;
    if (t) this.tokens.delete(key);
    return undefined;
  }

  async obtain(key: string, fetch: () => Promise<Token>): Promise<string> {
    const cached = this.get(key);
    if (cached) return cached;
    let p = this.inflight.get(key);
    if (!p) {
      p = fetch().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return t.token;
  }

  forget(key: string): void {
    this.tokens.delete(key);
  }
}
