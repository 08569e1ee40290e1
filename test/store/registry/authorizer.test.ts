// Where the Authorizer lets credentials go when a 401 names a token realm.
// The token endpoint is a recording function: the point is which requests
// are made at all, which no real token server can show.
import { describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { Authorizer } from '../../../src/store/registry/auth/authorizer.js';
import { parseChallenges } from '../../../src/store/registry/auth/challenge.js';
import type { TokenHttp } from '../../../src/store/registry/auth/token.js';
import { isRegistryHost } from '../../../src/store/registry/client.js';

function authorizer() {
  const asked: URL[] = [];
  const http: TokenHttp = async ({ url }) => {
    asked.push(url);
    return { status: 200, text: JSON.stringify({ token: 'tok', expires_in: 300 }) };
  };
  const auth = new Authorizer(async () => ({ username: 'user', password: 'secret' }), http);
  return { auth, asked };
}

const reauth = (auth: Authorizer, registryUrl: string, realm: string) =>
  auth.reauthorize(new URL(registryUrl), new URL(registryUrl).host, parseChallenges(`Bearer realm="${realm}",service="svc"`), ['repository:a/b:pull'], 'GET manifest');

describe('token realms', () => {
  it('fetches a token from a realm on another https host (Docker Hub does this)', async () => {
    const { auth, asked } = authorizer();
    expect(await reauth(auth, 'https://registry-1.docker.io/v2/a/b/manifests/x', 'https://auth.docker.io/token')).toBe('Bearer tok');
    expect(asked.map((u) => u.host)).toEqual(['auth.docker.io']);
  });

  it('allows a plain-HTTP realm beside a loopback or plain-HTTP registry', async () => {
    const { auth, asked } = authorizer();
    await reauth(auth, 'http://127.0.0.1:5000/v2/', 'http://127.0.0.1:5001/token');
    await reauth(auth, 'http://reg.internal/v2/', 'http://auth.internal/token');
    expect(asked.length).toBe(2);
  });

  it.each([
    ['an https registry downgraded to a plain-HTTP realm', 'https://reg.example/v2/', 'http://auth.example/token'],
    ['a remote registry pointing at the cloud metadata address', 'https://reg.example/v2/', 'https://169.254.169.254/latest/meta-data'],
    ['a remote registry pointing at this machine', 'https://reg.example/v2/', 'https://127.0.0.1:8443/token'],
    ['a remote registry pointing at IPv6 loopback', 'https://reg.example/v2/', 'https://[::1]/token'],
    ['a remote registry pointing at IPv6 link-local', 'https://reg.example/v2/', 'https://[fe80::1]/token'],
  ])('refuses %s, without asking it', async (_, registryUrl, realm) => {
    const { auth, asked } = authorizer();
    const err = await reauth(auth, registryUrl, realm).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('UNAUTHENTICATED');
    expect((err as BkError).reason).toBe('bad-challenge');
    expect(asked).toEqual([]);
  });
});

describe('token responses', () => {
  it.each([
    ['a token with a line break', JSON.stringify({ token: 'tok\r\nX-Injected: 1' })],
    ['a token with a space', JSON.stringify({ token: 'tok en' })],
    ['a non-JSON body', '<html>login</html>'],
    ['no token', JSON.stringify({ expires_in: 300 })],
  ])('refuses %s as UNAUTHENTICATED', async (_, text) => {
    const auth = new Authorizer(async () => undefined, async () => ({ status: 200, text }));
    const err = await auth
      .reauthorize(new URL('https://reg.example/v2/'), 'reg.example', parseChallenges('Bearer realm="https://auth.example/token"'), ['repository:a/b:pull'], 'GET manifest')
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('UNAUTHENTICATED');
    expect((err as BkError).reason).toBe('bad-token-response');
  });
});

describe('which URLs get credentials (client.ts isRegistryHost)', () => {
  it('matches the registry host however the reference writes it, and nothing else', () => {
    expect(isRegistryHost(new URL('https://reg.example/v2/'), 'Reg.Example')).toBe(true);
    expect(isRegistryHost(new URL('https://reg.example/v2/'), 'reg.example:443')).toBe(true);
    expect(isRegistryHost(new URL('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000')).toBe(true);
    expect(isRegistryHost(new URL('https://registry-1.docker.io/v2/'), 'docker.io')).toBe(true);
    expect(isRegistryHost(new URL('https://reg.example:8443/v2/'), 'reg.example')).toBe(false);
    expect(isRegistryHost(new URL('https://storage.example/upload'), 'reg.example')).toBe(false);
    expect(isRegistryHost(new URL('https://reg.example.evil/'), 'reg.example')).toBe(false);
  });
});
