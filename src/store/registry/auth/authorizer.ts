// Decides the Authorization header for each request to a registry host.
// A host's scheme is learned from its first 401 challenge and remembered, so
// later requests are authorized up front instead of each paying a 401.
// Re-authentication happens at most once per request (see client.ts), which
// is what keeps a misconfigured registry from turning into a request storm.
import { BkError } from '../../../errors.js';
import { challengeScopes, isInsufficientScope, mergeScopes, type Challenge } from './challenge.js';
import { basicHeader, hasAny, hasBasic, type CredentialProvider, type Credentials } from './credentials.js';
import { checkRealm, fetchToken, TokenCache, type TokenHttp } from './token.js';

interface HostAuth {
  challenge?: Challenge;
}

export class Authorizer {
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new TokenCache();
  private readonly credsByRegistry = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly credentials: CredentialProvider,
    private readonly http: TokenHttp,
  ) {}

  private state(host: string): HostAuth {
    let s = this.hosts.get(host);
    if (!s) {
      s = {};
      this.hosts.set(host, s);
    }
    return s;
  }

  /** Credentials for a registry name, looked up once per Authorizer. */
  creds(registry: string): Promise<Credentials | undefined> {
    let p = this.credsByRegistry.get(registry);
    if (!p) {
      p = this.credentials(registry);
      // A failed lookup (helper crashed) should not poison later attempts.
      p.catch(() => this.credsByRegistry.delete(registry));
      this.credsByRegistry.set(registry, p);
    }
    return p;
  }

  /**
   * The header to send before any challenge is seen for this request:
   * derived from the host's remembered challenge, or none.
   */
  async authorization(host: string, registry: string, scopes: readonly string[]): Promise<string | undefined> {
    const ch = this.state(host).challenge;
    if (!ch) {
      // A ready registry token needs no challenge to be useful.
      const c = await this.creds(registry);
      return c?.registryToken ? `Bearer ${c.registryToken}` : undefined;
    }
    return this.headerFor(host, registry, ch, scopes, false);
  }

  /**
   * Handles a 401: picks the challenge we can answer, remembers it for the
   * host, and returns a fresh header (never a cached token: the one we sent
   * was just refused). Throws UNAUTHENTICATED when nothing can be tried or
   * the challenge's realm is not a place for credentials (checkRealm).
   * `url` is the request that was refused (its scheme and host judge the realm).
   */
  async reauthorize(url: URL, registry: string, challenges: readonly Challenge[], scopes: readonly string[], what: string): Promise<string> {
    const host = url.host;
    const c = await this.creds(registry);
    const bearer = challenges.find((ch) => ch.scheme === 'bearer');
    const basic = challenges.find((ch) => ch.scheme === 'basic');
    const ch = bearer ?? (basic && hasBasic(c) ? basic : undefined);
    if (!ch) {
      const why = basic ? 'the registry wants basic auth and no credentials were found' : 'no usable authentication challenge';
      throw new BkError('UNAUTHENTICATED', `${what}: ${why}`, { reason: 'no-credentials' });
    }
    checkRealm(ch, url, what);
    this.state(host).challenge = ch;
    // The challenge names the scope this request needs; add ours so the one
    // token also covers what this store does next.
    const all = ch.scheme === 'bearer' ? mergeScopes(scopes, challengeScopes(ch)) : [...scopes];
    const header = await this.headerFor(host, registry, ch, all, true);
    if (!header) throw new BkError('UNAUTHENTICATED', `${what}: no credentials for ${registry}`, { reason: 'no-credentials' });
    return header;
  }

  /** Drops cached tokens after a second 401, so the next request starts clean. */
  forget(host: string, scopes: readonly string[]): void {
    const ch = this.state(host).challenge;
    if (ch) this.tokens.forget(TokenCache.key(host, ch, mergeScopes(scopes)));
  }

  /**
   * The error for a request refused twice. Having credentials and lacking
   * scope means "not allowed" (PERMISSION_DENIED); anything else means
   * "who are you" (UNAUTHENTICATED).
   */
  async finalError(registry: string, challenges: readonly Challenge[], what: string): Promise<BkError> {
    const c = await this.creds(registry);
    const insufficient = challenges.some(isInsufficientScope);
    if (insufficient && hasAny(c)) {
      return new BkError('PERMISSION_DENIED', `${what}: the registry refused access with these credentials (insufficient_scope)`, {
        reason: 'insufficient-scope',
      });
    }
    const why = hasAny(c) ? 'credentials rejected' : 'authentication required and no credentials were found';
    return new BkError('UNAUTHENTICATED', `${what}: ${why} (HTTP 401)`, { reason: insufficient ? 'insufficient-scope' : 'unauthorized' });
  }

  private async headerFor(host: string, registry: string, ch: Challenge, scopes: readonly string[], fresh: boolean): Promise<string | undefined> {
    const c = await this.creds(registry);
    if (ch.scheme === 'basic') return hasBasic(c) ? basicHeader(c) : undefined;
    if (c?.registryToken) return `Bearer ${c.registryToken}`;
    const merged = mergeScopes(scopes);
    const key = TokenCache.key(host, ch, merged);
    if (fresh) this.tokens.forget(key);
    const token = await this.tokens.obtain(key, () => fetchToken(this.http, ch, merged, c));
    return `Bearer ${token}`;
  }
}
