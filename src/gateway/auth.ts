// Who calls the gateway and what it may do, with the daemon's own tokens and
// grants (src/server/auth), so one token means the same on both surfaces.
//
// Clients of the distribution API authenticate the Docker way
// (https://distribution.github.io/distribution/spec/auth/token/): a request
// without a usable token gets 401 with
//   WWW-Authenticate: Bearer realm="<gateway>/token",service="<aud>",scope="repository:R:pull"
// and the client asks GET/POST <gateway>/token with Basic credentials whose
// password is a bkcache token (that is how `docker login` and buildkitd's
// credentials reach us). The answer is a gateway token narrowed to the scopes
// asked for: exact upstream names with the actions the bkcache token grants
// there, sealed (seal.ts) and short-lived. A bkcache token sent directly as
// Bearer works too. Decisions use the request and token only, never the store.
import { type AuthRuntime } from '../server/access.js';
import { allows, parsePattern, type Action, type Grant, type Identity } from '../server/auth/policy.js';
import { TokenError, verifyToken } from '../server/auth/token.js';
import { isRepoName } from './router.js';
import type { Sealer } from './seal.js';

export const GATEWAY_TOKEN_PREFIX = 'bkg1.';
/** Lifetime of a narrowed token; never beyond the bkcache token it came from. */
const TOKEN_TTL_SECONDS = 300;
const MAX_SCOPES = 64;

export interface RepoScope {
  /** Gateway repository name (what the client wrote). */
  repo: string;
  actions: Action[];
}

export interface ParsedScopes {
  repos: RepoScope[];
  catalog: boolean;
}

/**
 * Scopes of a token request: "repository:NAME:pull,push" and "registry:catalog:*"; unknown ones are ignored.
 * NAME must be a repository name of the spec: a narrowed token seals it as a grant pattern, so a scope
 * holding pattern syntax ("cache/acme/**" asked under a grant of "cache/acme/*") would widen the grant,
 * and one holding ".." or empty segments would seal a pattern that no longer parses.
 */
export function parseScopes(values: readonly string[]): ParsedScopes {
  const out: ParsedScopes = { repos: [], catalog: false };
  const words = values.flatMap((v) => v.split(' ')).filter(Boolean).slice(0, MAX_SCOPES);
  for (const w of words) {
    if (w === 'registry:catalog:*') {
      out.catalog = true;
      continue;
    }
    const m = /^repository:([^:]+):([a-z*,]+)$/.exec(w);
    if (!m || !isRepoName(m[1]!)) continue;
    const acts = m[2]!.split(',');
    const actions: Action[] = [];
    if (acts.includes('pull') || acts.includes('*')) actions.push('pull');
    if (acts.includes('push') || acts.includes('*') || acts.includes('delete')) actions.push('push');
    out.repos.push({ repo: m[1]!, actions });
  }
  return out;
}

/** Why a request is refused: no usable token (anonymous or bad), or a token without the grant. */
export class AuthFailure extends Error {
  constructor(
    readonly insufficient: boolean,
    readonly why: string,
  ) {
    super(why);
  }
}

interface SealedToken {
  sub: string;
  jti?: string;
  exp: number;
  grants: [string, Action[]][];
}

function jwtExp(token: string): number | undefined {
  try {
    const p = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof p.exp === 'number' ? p.exp : undefined;
  } catch {
    return undefined;
  }
}

export class GatewayAuth {
  constructor(
    private readonly runtime: AuthRuntime,
    private readonly sealer: Sealer,
    /** Gateway repository → the upstream resource name grants are matched against. */
    private readonly nameOf: (repo: string) => string,
    /** Repositories a read of `repo` may fall back to (the global tier): pull there rides along in a narrowed token. */
    private readonly fallbacks: (tenant: string, repo: string) => string[] = () => [],
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  get enabled(): boolean {
    return !!this.runtime.keys;
  }

  get service(): string {
    return this.runtime.verify.audience;
  }

  /** A bkcache token (JWT) or a gateway token → the caller. Throws AuthFailure. */
  verify(token: string): { identity: Identity; exp: number } {
    const keys = this.runtime.keys;
    if (!keys) throw new AuthFailure(false, 'auth is off');
    if (token.startsWith(GATEWAY_TOKEN_PREFIX)) {
      const t = this.sealer.open('token', token.slice(GATEWAY_TOKEN_PREFIX.length)) as SealedToken | undefined;
      if (!t || typeof t.sub !== 'string' || typeof t.exp !== 'number' || !Array.isArray(t.grants)) throw new AuthFailure(false, 'bad gateway token');
      if (t.exp <= this.now()) throw new AuthFailure(false, 'expired gateway token');
      const grants: Grant[] = t.grants.map(([p, a]) => ({ pattern: parsePattern(p), actions: new Set(a) }));
      return { identity: { tenant: t.sub, grants, ...(t.jti ? { tokenId: t.jti } : {}) }, exp: t.exp };
    }
    try {
      const identity = verifyToken(token, keys, this.runtime.verify);
      return { identity, exp: jwtExp(token) ?? this.now() + TOKEN_TTL_SECONDS };
    } catch (err) {
      throw new AuthFailure(false, err instanceof TokenError ? err.why : 'unexpected error');
    }
  }

  /** The caller of a registry API request; undefined with auth off (everything allowed). */
  authenticate(authorization: string | undefined): Identity | undefined {
    if (!this.enabled) return undefined;
    const m = /^Bearer ([^\s]+)$/i.exec(authorization?.trim() ?? '');
    if (!m) throw new AuthFailure(false, authorization ? 'not a bearer token' : 'no token');
    return this.verify(m[1]!).identity;
  }

  may(identity: Identity | undefined, action: Action, repo: string): boolean {
    if (!this.enabled) return true;
    return !!identity && allows(identity, action, this.nameOf(repo));
  }

  /** Throws AuthFailure unless the caller may `action` on `repo`. */
  require(identity: Identity | undefined, action: Action, repo: string): void {
    if (!this.may(identity, action, repo)) throw new AuthFailure(!!identity, `${action} ${this.nameOf(repo)} not granted`);
  }

  /** The WWW-Authenticate value for a refusal. */
  challenge(realmBase: string, scope: string | undefined, insufficient: boolean): string {
    let v = `Bearer realm="${realmBase}/token",service="${this.service}"`;
    if (scope) v += `,scope="${scope}"`;
    if (insufficient) v += ',error="insufficient_scope"';
    return v;
  }

  /**
   * The token endpoint: credentials (the bkcache token as a Basic password,
   * as a refresh token, or as Bearer) → a gateway token for the scopes asked,
   * holding only what the bkcache token grants there.
   */
  issue(credential: string, scopes: ParsedScopes): { token: string; expiresIn: number; issuedAt: string } {
    const { identity, exp } = this.verify(credential);
    const grants: [string, Action[]][] = [];
    for (const s of scopes.repos) {
      let name: string;
      try {
        name = this.nameOf(s.repo);
      } catch {
        continue;
      }
      const actions = s.actions.filter((a) => allows(identity, a, name));
      if (actions.length) grants.push([name, actions]);
      if (actions.includes('pull')) {
        for (const f of this.fallbacks(identity.tenant, s.repo)) {
          const fname = this.nameOf(f);
          if (allows(identity, 'pull', fname)) grants.push([fname, ['pull']]);
        }
      }
    }
    // _catalog lists what the caller may pull: the catalog scope keeps the pull grants as patterns.
    if (scopes.catalog) for (const g of identity.grants) if (g.actions.has('pull')) grants.push([g.pattern.source, ['pull']]);
    const now = this.now();
    const until = Math.min(exp, now + TOKEN_TTL_SECONDS);
    const sealed: SealedToken = { sub: identity.tenant, exp: until, grants, ...(identity.tokenId ? { jti: identity.tokenId } : {}) };
    return { token: GATEWAY_TOKEN_PREFIX + this.sealer.seal('token', sealed), expiresIn: Math.max(1, until - now), issuedAt: new Date(now * 1000).toISOString() };
  }
}
