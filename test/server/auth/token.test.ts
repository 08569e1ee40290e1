// Bearer tokens: what verifies, and that everything else (forged, expired,
// tampered, alg=none, wrong audience, malformed, missing) is rejected, and
// reaches the caller as one and the same UNAUTHENTICATED error.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { authenticate, UNAUTHENTICATED_MESSAGE } from '../../../src/server/access.js';
import { newAudit } from '../../../src/server/auth/audit.js';
import { allows } from '../../../src/server/auth/policy.js';
import { bearerToken, signToken, TokenError, verifyToken, type Claims, type VerifyKeys } from '../../../src/server/auth/token.js';
import type { ServerContext } from '../../../src/server/context.js';
import { DEFAULT_LIMITS } from '../../../src/server/config.js';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef-test-secret');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const NOW = 1_700_000_000;
const opts = { audience: 'bkcache', now: () => NOW * 1000, skewSeconds: 30 };

function claims(over: Partial<Claims> = {}): Claims {
  return {
    sub: 'acme',
    aud: 'bkcache',
    iat: NOW,
    nbf: NOW,
    exp: NOW + 3600,
    jti: 'id-1',
    access: [
      { repository: 'reg.io/cache/global/**', actions: ['pull'] },
      { repository: 'reg.io/cache/acme/**', actions: ['pull', 'push'] },
    ],
    ...over,
  };
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** A token with any header, payload and signature bytes: for what signToken refuses to make. */
const raw = (header: unknown, payload: unknown, sig = '') => `${b64(header)}.${b64(payload)}.${sig}`;
const hs = (header: unknown, payload: unknown, secret: Buffer | string) => {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
};

describe('valid tokens verify', () => {
  it.each([
    ['HS256', () => signToken(claims(), { alg: 'HS256', secret: SECRET }), { hmacSecret: SECRET }],
    ['ES256', () => signToken(claims(), { alg: 'ES256', privateKey: ec.privateKey }), { publicKey: ec.publicKey }],
    ['RS256', () => signToken(claims(), { alg: 'RS256', privateKey: rsa.privateKey }), { publicKey: rsa.publicKey }],
  ] as const)('%s', (_alg, mint, keys: VerifyKeys) => {
    const who = verifyToken(mint(), keys, opts);
    expect(who.tenant).toBe('acme');
    expect(who.tokenId).toBe('id-1');
    expect(allows(who, 'push', 'reg.io/cache/acme/app')).toBe(true);
    expect(allows(who, 'push', 'reg.io/cache/global/app')).toBe(false);
    expect(allows(who, 'pull', 'reg.io/cache/global/app')).toBe(true);
  });

  it('accepts aud as a list, and clocks within the skew', () => {
    const keys = { hmacSecret: SECRET };
    expect(verifyToken(signToken(claims({ aud: ['other', 'bkcache'] }), { alg: 'HS256', secret: SECRET }), keys, opts).tenant).toBe('acme');
    expect(verifyToken(signToken(claims({ exp: NOW - 10 }), { alg: 'HS256', secret: SECRET }), keys, opts).tenant).toBe('acme');
    expect(verifyToken(signToken(claims({ nbf: NOW + 10 }), { alg: 'HS256', secret: SECRET }), keys, opts).tenant).toBe('acme');
  });
});

describe('everything else is rejected', () => {
  const keys: VerifyKeys = { hmacSecret: SECRET, publicKey: ec.publicKey };
  const good = signToken(claims(), { alg: 'HS256', secret: SECRET });
  const [h, p, s] = good.split('.') as [string, string, string];
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const flip = (x: string, i: number) => x.slice(0, i) + (x[i] === 'A' ? 'B' : 'A') + x.slice(i + 1);

  const cases: [string, string, string][] = [
    ['expired', signToken(claims({ exp: NOW - 31 }), { alg: 'HS256', secret: SECRET }), 'expired'],
    ['not yet valid', signToken(claims({ nbf: NOW + 31 }), { alg: 'HS256', secret: SECRET }), 'not yet valid'],
    ['no exp', signToken({ ...claims(), exp: undefined } as unknown as Claims, { alg: 'HS256', secret: SECRET }), 'exp'],
    ['wrong audience', signToken(claims({ aud: 'someone-else' }), { alg: 'HS256', secret: SECRET }), 'wrong audience'],
    ['no audience', signToken({ ...claims(), aud: undefined } as unknown as Claims, { alg: 'HS256', secret: SECRET }), 'aud'],
    ['forged: another secret', signToken(claims(), { alg: 'HS256', secret: Buffer.from('x'.repeat(40)) }), 'bad signature'],
    ['forged: another EC key', signToken(claims(), { alg: 'ES256', privateKey: other.privateKey }), 'bad signature'],
    ['RS256 against an EC public key', signToken(claims(), { alg: 'RS256', privateKey: rsa.privateKey }), 'not accepted'],
    ['alg=none, no signature', raw({ alg: 'none', typ: 'JWT' }, claims()), 'not accepted'],
    ['alg=none, with a signature', raw({ alg: 'none' }, claims(), s), 'not accepted'],
    ['alg=None spelled otherwise', raw({ alg: 'NONE' }, claims()), 'not accepted'],
    ['alg=HS512', hs({ alg: 'HS512' }, claims(), SECRET), 'not accepted'],
    ['alg confusion: HS256 keyed with the public key PEM', hs({ alg: 'HS256' }, claims(), pem), 'bad signature'],
    ['tampered payload', `${h}.${b64(claims({ sub: 'evil' }))}.${s}`, 'bad signature'],
    ['tampered grants', `${h}.${b64(claims({ access: [{ repository: '**', actions: ['pull', 'push'] }] }))}.${s}`, 'bad signature'],
    ['tampered signature', `${h}.${p}.${flip(s, 5)}`, 'bad signature'],
    ['tampered header', `${b64({ alg: 'HS256', typ: 'JWT', kid: 'x' })}.${p}.${s}`, 'bad signature'],
    ['non-canonical base64 in the signature', `${h}.${p}.${s.slice(0, -1)}${String.fromCharCode(s.charCodeAt(s.length - 1) + 1)}`, ''],
    ['padding', `${h}.${p}.${s}=`, 'base64url'],
    ['two parts', `${h}.${p}`, 'compact'],
    ['four parts', `${good}.x`, 'compact'],
    ['header not JSON', `${b64('not json')}.${p}.${s}`, 'JSON'],
    ['not base64', `${h}.${p}!.${s}`, 'base64url'],
    ['empty', '', 'missing'],
    ['crit header', hs({ alg: 'HS256', crit: ['exp'] }, claims(), SECRET), 'crit'],
    ['payload is an array', hs({ alg: 'HS256' }, [1, 2], SECRET), 'object'],
    ['sub is not a tenant id', signToken(claims({ sub: 'Acme Corp' }), { alg: 'HS256', secret: SECRET }), 'sub'],
    ['sub with a slash', signToken(claims({ sub: 'a/../b' }), { alg: 'HS256', secret: SECRET }), 'sub'],
    ['no access claim', signToken({ ...claims(), access: undefined } as unknown as Claims, { alg: 'HS256', secret: SECRET }), 'access'],
    ['unknown action', signToken(claims({ access: [{ repository: 'reg.io/x', actions: ['delete' as 'push'] }] }), { alg: 'HS256', secret: SECRET }), 'actions'],
    ['bad pattern', signToken(claims({ access: [{ repository: 'reg.io//x', actions: ['pull'] }] }), { alg: 'HS256', secret: SECRET }), 'empty segment'],
    ['half-filled template', signToken(claims({ access: [{ repository: 'reg.io/cache/{tenant}/**', actions: ['pull'] }] }), { alg: 'HS256', secret: SECRET }), 'forbidden'],
  ];

  it.each(cases)('%s', (_name, token, why) => {
    let err: unknown;
    try {
      verifyToken(token, keys, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).why).toContain(why);
  });

  it('an issuer, when configured, must match', () => {
    const t = signToken(claims({ iss: 'ci' }), { alg: 'HS256', secret: SECRET });
    expect(verifyToken(t, keys, { ...opts, issuer: 'ci' }).tenant).toBe('acme');
    expect(() => verifyToken(t, keys, { ...opts, issuer: 'other' })).toThrow(TokenError);
  });

  it('reaches the caller as one UNAUTHENTICATED error, whatever the reason; the reason stays in the audit record', () => {
    const ctx = { auth: { keys, verify: opts }, cfg: { root: '/nonexistent', limits: DEFAULT_LIMITS } } as unknown as ServerContext;
    const seen = new Set<string>();
    const reasons = new Set<string>();
    const headers: (string | string[] | undefined)[] = [undefined, 'Basic dXNlcjpwYXNz', 'Bearer', ['Bearer a', 'Bearer b'], ...cases.map(([, t]) => `Bearer ${t}`)];
    for (const hv of headers) {
      const md = new Metadata();
      for (const v of [hv].flat()) if (v !== undefined) md.add('authorization', v);
      const audit = newAudit();
      try {
        authenticate(ctx, md, audit);
        throw new Error('accepted');
      } catch (e) {
        const err = e as { code: string; message: string; reason: string };
        seen.add(JSON.stringify([err.code, err.message, err.reason]));
      }
      reasons.add(audit.auth_error!);
      expect(JSON.stringify(audit)).not.toContain(String(hv).slice(7, 40) || 'never');
    }
    expect([...seen]).toEqual([JSON.stringify(['UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE, 'unauthenticated'])]);
    expect(reasons.size).toBeGreaterThan(10);
    const md = new Metadata();
    md.set('authorization', `bearer ${good}`);
    expect(authenticate(ctx, md, newAudit()).identity?.tenant).toBe('acme');
  });
});

describe('bearerToken', () => {
  it('takes exactly one Bearer value', () => {
    expect(bearerToken(['Bearer abc.def.ghi'])).toBe('abc.def.ghi');
    expect(bearerToken(['bearer   abc'])).toBe('abc');
    for (const bad of [[], ['Basic abc'], ['Bearer'], ['Bearer a b'], ['Bearer a', 'Bearer b'], [Buffer.from('Bearer a')]]) {
      expect(() => bearerToken(bad)).toThrow(TokenError);
    }
  });
});

describe('signToken', () => {
  it('refuses a key that cannot make the algorithm', () => {
    expect(() => signToken(claims(), { alg: 'RS256', privateKey: ec.privateKey })).toThrow(/cannot sign RS256/);
    const weak = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    expect(() => signToken(claims(), { alg: 'ES256', privateKey: weak.privateKey })).toThrow(/unsupported key/);
  });
});
