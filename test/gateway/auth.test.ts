// Gateway identity: scopes parsed from token requests, narrowed gateway
// tokens (only what the bkcache token grants, no longer than it lives,
// tamper-proof), and the challenge text.
import { describe, expect, it } from 'vitest';
import { AuthFailure, GATEWAY_TOKEN_PREFIX, GatewayAuth, parseScopes } from '../../src/gateway/auth.js';
import { Sealer } from '../../src/gateway/seal.js';
import { signToken, type Claims } from '../../src/server/auth/token.js';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef-gw-secret');
const now = () => Math.floor(Date.now() / 1000);

function token(over: Partial<Claims> = {}): string {
  return signToken(
    {
      sub: 'acme',
      aud: 'bkcache',
      exp: now() + 3600,
      jti: 'tok-1',
      access: [
        { repository: 'reg.io/cache/global/**', actions: ['pull'] },
        { repository: 'reg.io/cache/acme/**', actions: ['pull', 'push'] },
      ],
      ...over,
    },
    { alg: 'HS256', secret: SECRET },
  );
}

const auth = (fallbacks?: (t: string, r: string) => string[]) =>
  new GatewayAuth({ keys: { hmacSecret: SECRET }, verify: { audience: 'bkcache' } }, new Sealer(SECRET), (r) => `reg.io/${r}`, fallbacks);

describe('parseScopes', () => {
  it('reads repository and catalog scopes, space-joined or repeated, and ignores the rest', () => {
    expect(parseScopes(['repository:cache/a:pull,push repository:cache/b:pull', 'registry:catalog:*', 'junk', 'repository:x:*'])).toEqual({
      repos: [
        { repo: 'cache/a', actions: ['pull', 'push'] },
        { repo: 'cache/b', actions: ['pull'] },
        { repo: 'x', actions: ['pull', 'push'] },
      ],
      catalog: true,
    });
    expect(parseScopes(Array(200).fill('repository:a:pull')).repos.length).toBeLessThanOrEqual(64);
  });
});

describe('GatewayAuth', () => {
  it('accepts a bkcache token as Bearer and decides on the upstream name', () => {
    const a = auth();
    const id = a.authenticate(`Bearer ${token()}`);
    expect(id?.tenant).toBe('acme');
    expect(a.may(id, 'push', 'cache/acme/app')).toBe(true);
    expect(a.may(id, 'push', 'cache/global/app')).toBe(false);
    expect(a.may(id, 'pull', 'cache/other/app')).toBe(false);
  });

  it('refuses missing, malformed, wrong-audience and Basic credentials on the API', () => {
    const a = auth();
    for (const h of [undefined, '', 'Bearer', `Basic ${Buffer.from(`u:${token()}`).toString('base64')}`, 'Bearer x.y.z', `Bearer ${token({ aud: 'other' })}`]) {
      expect(() => a.authenticate(h)).toThrow(AuthFailure);
    }
  });

  it('issues a token narrowed to the scopes asked and granted', () => {
    const a = auth();
    const t = a.issue(token(), parseScopes(['repository:cache/acme/app:pull,push repository:cache/global/app:pull,push repository:cache/other/app:pull']));
    expect(t.token.startsWith(GATEWAY_TOKEN_PREFIX)).toBe(true);
    expect(t.expiresIn).toBeLessThanOrEqual(300);
    const id = a.authenticate(`Bearer ${t.token}`);
    expect(id).toMatchObject({ tenant: 'acme', tokenId: 'tok-1' });
    expect(a.may(id, 'push', 'cache/acme/app')).toBe(true);
    expect(a.may(id, 'pull', 'cache/global/app')).toBe(true);
    expect(a.may(id, 'push', 'cache/global/app')).toBe(false);
    expect(a.may(id, 'pull', 'cache/other/app')).toBe(false);
    // Narrowed: another repository of the same grant is not in it.
    expect(a.may(id, 'pull', 'cache/acme/other')).toBe(false);
  });

  it('adds pull on the fallback tier of a pulled repository, when the bkcache token grants it', () => {
    const a = auth((tenant, repo) => (repo === 'cache/acme/app' ? ['cache/global/app'] : repo === 'cache/acme/x' ? ['cache/other/x'] : []));
    const id = a.authenticate(`Bearer ${a.issue(token(), parseScopes(['repository:cache/acme/app:pull repository:cache/acme/x:pull'])).token}`);
    expect(a.may(id, 'pull', 'cache/global/app')).toBe(true);
    expect(a.may(id, 'pull', 'cache/other/x')).toBe(false);
  });

  it('never outlives the bkcache token, and refuses tampered or foreign gateway tokens', () => {
    const a = auth();
    const short = a.issue(token({ exp: now() + 20 }), parseScopes(['repository:cache/acme/app:pull']));
    expect(short.expiresIn).toBeLessThanOrEqual(20);
    const t = short.token;
    const flipped = t.slice(0, 12) + (t[12] === 'A' ? 'B' : 'A') + t.slice(13);
    expect(() => a.authenticate(`Bearer ${flipped}`)).toThrow(AuthFailure);
    const other = new GatewayAuth({ keys: { hmacSecret: SECRET }, verify: { audience: 'bkcache' } }, new Sealer(Buffer.alloc(32, 7)), (r) => `reg.io/${r}`);
    expect(() => other.authenticate(`Bearer ${t}`)).toThrow(AuthFailure);
    expect(() => a.issue('garbage', parseScopes([]))).toThrow(AuthFailure);
  });

  it('catalog scope keeps the pull grants as patterns', () => {
    const a = auth();
    const id = a.authenticate(`Bearer ${a.issue(token(), parseScopes(['registry:catalog:*'])).token}`);
    expect(a.may(id, 'pull', 'cache/acme/anything')).toBe(true);
    expect(a.may(id, 'push', 'cache/acme/anything')).toBe(false);
  });

  it('writes the Docker challenge', () => {
    expect(auth().challenge('https://gw:5000', 'repository:cache/a:pull', true)).toBe(
      'Bearer realm="https://gw:5000/token",service="bkcache",scope="repository:cache/a:pull",error="insufficient_scope"',
    );
  });

  it('allows everything with auth off', () => {
    const off = new GatewayAuth({ verify: { audience: 'bkcache' } }, new Sealer(SECRET), (r) => r);
    expect(off.enabled).toBe(false);
    expect(off.authenticate(undefined)).toBeUndefined();
    expect(off.may(undefined, 'push', 'any/thing')).toBe(true);
  });
});

describe('hostile scopes at the token endpoint', () => {
  it('never turns a scope with pattern characters into a wider grant than the bkcache token holds', () => {
    // One segment under cache/acme, not any depth.
    const oneSegment = token({ access: [{ repository: 'reg.io/cache/acme/*', actions: ['pull', 'push'] }] });
    const a = auth();
    const t = a.issue(oneSegment, parseScopes(['repository:cache/acme/**:pull,push repository:cache/acme/*:pull']));
    const id = a.authenticate(`Bearer ${t.token}`);
    expect(a.may(id, 'pull', 'cache/acme/app/deeper')).toBe(false);
    expect(a.may(id, 'push', 'cache/acme/x/y/z')).toBe(false);
    expect(a.may(id, 'pull', 'cache/acme/app')).toBe(false);
  });

  it('ignores scopes that are not repository names, so the token it issues stays usable (no 500 on use)', () => {
    const a = auth();
    for (const s of ['repository:cache/acme/x/../../other:pull', 'repository:cache/acme/./app:pull', 'repository:cache/acme/App:pull', 'repository:cache//acme:pull', `repository:cache/acme/${'a'.repeat(300)}:pull`]) {
      const t = a.issue(token(), parseScopes([s, 'repository:cache/acme/app:pull']));
      const id = a.authenticate(`Bearer ${t.token}`);
      expect(a.may(id, 'pull', 'cache/acme/app')).toBe(true);
      expect(a.may(id, 'pull', 'cache/other')).toBe(false);
    }
    expect(parseScopes(['repository:cache/acme/**:pull', 'repository:a/../b:push']).repos).toEqual([]);
  });
});
