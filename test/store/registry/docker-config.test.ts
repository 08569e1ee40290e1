// Docker config.json lookup and the credential-helper protocol, with a fake
// `docker-credential-test` script on PATH. Protocol:
// https://github.com/docker/docker-credential-helpers#development
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { chainCredentials, staticCredentials } from '../../../src/store/registry/auth/credentials.js';
import {
  defaultDockerConfigPath,
  dockerConfigCredentials,
  lookupDockerConfig,
  normalizeAuthKey,
  runCredentialHelper,
} from '../../../src/store/registry/auth/docker-config.js';

let dir: string;
let oldPath: string | undefined;
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function fails(p: Promise<unknown>): Promise<BkError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BkError);
  return err as BkError;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bkcache-creds-'));
  // The fake helper answers for three hosts and logs what it was asked.
  const script = `#!/bin/sh
[ "$1" = "get" ] || exit 3
read server
echo "$server" >> "${dir}/asked"
case "$server" in
  helper.example) echo '{"ServerURL":"helper.example","Username":"hu","Secret":"hs"}' ;;
  token.example) echo '{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-me"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hubpass"}' ;;
  broken.example) echo 'not json' ;;
  crash.example) echo 'boom' >&2; exit 2 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  writeFileSync(join(dir, 'docker-credential-test'), script);
  chmodSync(join(dir, 'docker-credential-test'), 0o755);
  oldPath = process.env.PATH;
  process.env.PATH = `${dir}:${oldPath}`;
});

afterAll(() => {
  process.env.PATH = oldPath;
  rmSync(dir, { recursive: true, force: true });
});

describe('normalizeAuthKey', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['http://localhost:5000', 'localhost:5000'],
    ['https://ghcr.io/v2/whatever', 'ghcr.io'],
    ['quay.io', 'quay.io'],
  ])('%s → %s', (key, host) => expect(normalizeAuthKey(key)).toBe(host));
});

describe('auths entries', () => {
  const cfg = {
    auths: {
      'https://index.docker.io/v1/': { auth: b64('hub:secret:with:colons') },
      'http://127.0.0.1:5000': { username: 'u', password: 'p' },
      'id.example': { identitytoken: 'idt' },
      'bad.example': { auth: b64('no-colon-here') },
      'empty.example': {},
    },
  };

  it('decodes base64 auth, username/password and identity tokens', async () => {
    expect(await lookupDockerConfig(cfg, 'docker.io')).toEqual({ username: 'hub', password: 'secret:with:colons' });
    expect(await lookupDockerConfig(cfg, '127.0.0.1:5000')).toEqual({ username: 'u', password: 'p' });
    expect(await lookupDockerConfig(cfg, 'id.example')).toEqual({ identityToken: 'idt' });
    expect(await lookupDockerConfig(cfg, 'empty.example')).toBeUndefined();
    expect(await lookupDockerConfig(cfg, 'other.example')).toBeUndefined();
  });

  it('rejects a malformed auth without quoting it', async () => {
    const err = await fails(lookupDockerConfig(cfg, 'bad.example'));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).not.toContain(b64('no-colon-here'));
  });
});

describe('credential helpers', () => {
  it('runs credHelpers for their host and credsStore for the rest', async () => {
    const cfg = { credHelpers: { 'helper.example': 'test' }, credsStore: 'test', auths: { 'file.example': { username: 'f', password: 'g' } } };
    expect(await lookupDockerConfig(cfg, 'helper.example')).toEqual({ username: 'hu', password: 'hs' });
    expect(await lookupDockerConfig(cfg, 'token.example')).toEqual({ identityToken: 'refresh-me' });
    expect(await lookupDockerConfig(cfg, 'docker.io')).toEqual({ username: 'hubuser', password: 'hubpass' });
    // The store has nothing for it: fall back to the inline entry.
    expect(await lookupDockerConfig(cfg, 'file.example')).toEqual({ username: 'f', password: 'g' });
    expect(await lookupDockerConfig(cfg, 'nobody.example')).toBeUndefined();
  });

  it('types helper failures without echoing their output', async () => {
    for (const host of ['broken.example', 'crash.example']) {
      const err = await fails(runCredentialHelper('test', host));
      expect(err.code).toBe('UNAUTHENTICATED');
      expect(err.message).not.toContain('boom');
    }
    const missing = await fails(runCredentialHelper('does-not-exist-anywhere', 'x'));
    expect(missing.code).toBe('UNAUTHENTICATED');
    await expect(runCredentialHelper('../evil', 'x')).rejects.toThrow(/bad credential helper/);
  });
});

describe('dockerConfigCredentials', () => {
  it('reads an explicit path, and treats a missing file as anonymous', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ auths: { 'reg.example': { auth: b64('a:b') } } }));
    expect(await dockerConfigCredentials(file)('reg.example')).toEqual({ username: 'a', password: 'b' });
    expect(await dockerConfigCredentials(join(dir, 'nope.json'))('reg.example')).toBeUndefined();
    writeFileSync(join(dir, 'bad.json'), '{');
    await expect(dockerConfigCredentials(join(dir, 'bad.json'))('reg.example')).rejects.toBeInstanceOf(BkError);
  });

  it('finds the default path through DOCKER_CONFIG or HOME', () => {
    expect(defaultDockerConfigPath({ DOCKER_CONFIG: '/etc/dc' })).toBe('/etc/dc/config.json');
    expect(defaultDockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });

  it('chains explicit credentials before the file', async () => {
    const file = join(dir, 'config.json');
    const p = chainCredentials(staticCredentials({ 'x.example': { username: 'x', password: 'y' } }), dockerConfigCredentials(file));
    expect(await p('x.example')).toEqual({ username: 'x', password: 'y' });
    expect(await p('reg.example')).toEqual({ username: 'a', password: 'b' });
  });
});
