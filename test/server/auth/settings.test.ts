// The config's auth and tiers sections, the key files they name, and the
// audit part of a call's log line.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { scrub } from '../../../src/server/auth/audit.js';
import { loadSigningKey, loadVerifyKeys } from '../../../src/server/auth/keys.js';
import { signToken, verifyToken } from '../../../src/server/auth/token.js';
import { applyConfigFile, defaultConfig } from '../../../src/server/config.js';
import { trackCall, type ServerContext } from '../../../src/server/context.js';
import { Metrics } from '../../../src/server/metrics.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-auth-settings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const f = (n: string, body: string) => {
  const p = path.join(tmp, n);
  writeFileSync(p, body);
  return p;
};

describe('auth and tiers in the config file', () => {
  it('reads them, paths relative to the file', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    f('ec.key.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    f('secret', 'k'.repeat(40) + '\n');
    const file = f(
      'c.yaml',
      `auth:
  audience: builds
  issuer: ci
  hmacSecretFile: secret
  privateKeyFile: ec.key.pem
  clockSkewSeconds: 5
tiers:
  global: reg.io/cache/global/{name}
  tenant: reg.io/cache/{tenant}/{name}
  tenants:
    bigco: { global: "reg.io/cache/global/{name}", tenant: "big.reg.io/bigco/{name}" }
`,
    );
    const cfg = applyConfigFile(defaultConfig(), file);
    expect(cfg.auth).toEqual({
      audience: 'builds',
      issuer: 'ci',
      hmacSecretFile: path.join(tmp, 'secret'),
      privateKeyFile: path.join(tmp, 'ec.key.pem'),
      clockSkewSeconds: 5,
      allowUnauthenticatedTcp: false,
    });
    expect(cfg.tiers?.default?.tenant).toBe('reg.io/cache/{tenant}/{name}');
    expect(cfg.tiers?.tenants['bigco']?.tenant).toBe('big.reg.io/bigco/{name}');

    // The daemon verifies ES256 with the private key's public half, and HS256 with the secret (newline dropped).
    const keys = loadVerifyKeys(cfg.auth)!;
    expect(keys.hmacSecret?.toString()).toBe('k'.repeat(40));
    const claims = { sub: 'acme', aud: 'builds', iss: 'ci', exp: Date.now() / 1000 + 60, access: [] };
    for (const alg of ['ES256', 'HS256'] as const) {
      const jwt = signToken(claims, loadSigningKey(cfg.auth, alg));
      expect(verifyToken(jwt, keys, { audience: 'builds', issuer: 'ci' }).tenant).toBe('acme');
    }
  });

  it('refuses unknown keys, bad templates, bad tenant ids, short secrets and unreadable keys', () => {
    const file = path.join(tmp, 'bad.json');
    const bad = [
      { auth: { audiance: 'x' } },
      { auth: { clockSkewSeconds: -1 } },
      { auth: { allowUnauthenticatedTcp: 'yes' } },
      { tiers: { global: 'reg.io/cache/global/{name}' } },
      { tiers: { global: 'reg.io/cache/global/{name}', tenant: 'reg.io/{name}/cache' } },
      { tiers: { tenants: { 'Big Co': { global: 'reg.io/g/{name}', tenant: 'reg.io/t/{name}' } } } },
      { tiers: { extra: 1 } },
    ];
    for (const b of bad) {
      writeFileSync(file, JSON.stringify(b));
      expect(() => applyConfigFile(defaultConfig(), file), JSON.stringify(b)).toThrow(BkError);
    }
    const short = { ...defaultConfig().auth, hmacSecretFile: f('short', 'tooshort\n') };
    expect(() => loadVerifyKeys(short)).toThrow(/shorter than 32 bytes/);
    expect(() => loadVerifyKeys({ ...defaultConfig().auth, publicKeyFile: path.join(tmp, 'missing.pem') })).toThrow(/cannot read/);
    const garbage = { ...defaultConfig().auth, publicKeyFile: f('garbage.pem', 'not a key') };
    expect(() => loadVerifyKeys(garbage)).toThrow(BkError);
    expect(loadVerifyKeys(defaultConfig().auth)).toBeUndefined();
  });
});

describe('the audit part of the call line', () => {
  it('has tenant, method, refs, code and bytes, and never anything token-shaped', () => {
    const lines: Record<string, unknown>[] = [];
    const log = { debug() {}, info: (_m: string, l?: Record<string, unknown>) => lines.push(l!), error: (_m: string, l?: Record<string, unknown>) => lines.push(l!) };
    const ctx = { cfg: defaultConfig(), log, metrics: new Metrics() } as unknown as ServerContext;
    const t = trackCall(ctx, 'FetchBlob', 'unix:test');
    t.audit.tenant = 'acme';
    t.audit.refs.push('pull reg.io/cache/acme/app');
    t.audit.bytes = 1234;
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlc2lnbmF0dXJl';
    t.fields.source = `type=registry,ref=reg.io/cache/acme/app,junk=${jwt}`;
    t.end(new BkError('PERMISSION_DENIED', 'permission denied: the token does not grant pull on the source'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'FetchBlob', code: 'PERMISSION_DENIED', tenant: 'acme', refs: ['pull reg.io/cache/acme/app'], bytes: 1234 });
    expect(JSON.stringify(lines[0])).not.toContain(jwt.split('.')[1]);
    expect(scrub({ a: [`x ${jwt} y`] })).toEqual({ a: ['x [redacted] y'] });
  });
});
