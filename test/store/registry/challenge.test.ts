// WWW-Authenticate parsing and scope handling (RFC 9110 §11.6.1;
// https://distribution.github.io/distribution/spec/auth/scope/).
import { describe, expect, it } from 'vitest';
import { challengeScopes, isInsufficientScope, mergeScopes, parseChallenges, repositoryScope } from '../../../src/store/registry/auth/challenge.js';
import { TokenCache, usableUntil } from '../../../src/store/registry/auth/token.js';

describe('parseChallenges', () => {
  it('parses a Docker Hub bearer challenge', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"');
    expect(c).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' },
    });
    expect(challengeScopes(c!)).toEqual(['repository:samalba/my-app:pull,push']);
  });

  it('parses basic, unquoted values, odd spacing and case', () => {
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    expect(parseChallenges('BEARER   Realm = https://a/t ,  Service=svc')).toEqual([{ scheme: 'bearer', params: { realm: 'https://a/t', service: 'svc' } }]);
  });

  it('splits several challenges in one header and across headers', () => {
    const cs = parseChallenges(['Basic realm="a", Bearer realm="https://b/token",service="s"', 'Negotiate']);
    expect(cs.map((c) => c.scheme)).toEqual(['basic', 'bearer', 'negotiate']);
    expect(cs[1]!.params).toEqual({ realm: 'https://b/token', service: 's' });
  });

  it('unescapes quoted strings and keeps commas inside quotes', () => {
    const [c] = parseChallenges('Bearer realm="https://x/t?a=1,b=2",error="insufficient_scope",error_description="say \\"hi\\""');
    expect(c!.params.realm).toBe('https://x/t?a=1,b=2');
    expect(c!.params.error_description).toBe('say "hi"');
    expect(isInsufficientScope(c)).toBe(true);
  });

  it('keeps token68 credentials and survives garbage', () => {
    expect(parseChallenges('Negotiate abc123==')[0]!.params['']).toBe('abc123==');
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges(undefined)).toEqual([]);
    expect(() => parseChallenges('"unterminated ,,, = = Bearer realm="x')).not.toThrow();
    expect(parseChallenges('Bearer realm="unterminated')[0]!.params.realm).toBe('unterminated');
  });
});

describe('scopes', () => {
  it('unites actions per resource, sorted and deduplicated', () => {
    expect(mergeScopes(['repository:a:pull'], ['repository:a:push,pull', 'repository:b:pull'])).toEqual([
      'repository:a:pull,push',
      'repository:b:pull',
    ]);
    expect(mergeScopes(['registry:catalog:*'])).toEqual(['registry:catalog:*']);
    expect(repositoryScope('x/y', 'pull', 'push')).toBe('repository:x/y:pull,push');
  });
});

describe('token lifetime', () => {
  it('stops using a token 10% (5 s at least) before it expires', () => {
    expect(usableUntil(300, 0)).toBe(270_000);
    expect(usableUntil(20, 0)).toBe(15_000);
    // The spec's 60 s default when expires_in is missing or zero.
    expect(usableUntil(0, 0)).toBe(54_000);
  });

  it('caches per key and shares one fetch between concurrent callers', async () => {
    const cache = new TokenCache();
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      await new Promise((r) => setTimeout(r, 10));
      return { token: `t${fetches}`, usableUntil: Date.now() + 60_000 };
    };
    const [a, b] = await Promise.all([cache.obtain('k', fetch), cache.obtain('k', fetch)]);
    expect([a, b, fetches]).toEqual(['t1', 't1', 1]);
    expect(await cache.obtain('k', fetch)).toBe('t1');
    cache.forget('k');
    expect(await cache.obtain('k', fetch)).toBe('t2');
    expect(cache.get('other')).toBeUndefined();
  });

  it('drops expired tokens', () => {
    const cache = new TokenCache();
    void cache.obtain('k', async () => ({ token: 'old', usableUntil: 1 }));
    expect(cache.get('k', 2)).toBeUndefined();
  });
});
