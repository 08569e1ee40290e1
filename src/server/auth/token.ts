// Bearer tokens: compact JWS (RFC 7515) JWTs (RFC 7519), signed HS256 with a
// shared secret, or ES256 / RS256 with a private key whose public half the
// daemon holds. Node's crypto does the cryptography; this file decides what a
// valid token is. Every rejection is a TokenError whose `why` goes to the
// daemon's log only: callers get one fixed UNAUTHENTICATED message, so they
// cannot tell a forged token from an expired one.
import { createHmac, createPublicKey, sign as cryptoSign, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ACTIONS, parsePattern, type Action, type Grant, type Identity } from './policy.js';

export type Alg = 'HS256' | 'ES256' | 'RS256';

/** One entry of the `access` claim: a repository pattern and the actions granted on it. */
export interface AccessClaim {
  repository: string;
  actions: Action[];
}

export interface Claims {
  sub: string;
  /** Seconds since the epoch. */
  exp: number;
  nbf?: number;
  iat?: number;
  aud: string | string[];
  iss?: string;
  jti?: string;
  access: AccessClaim[];
}

/** Keys a daemon verifies with. The algorithm a token names picks the key; nothing else can. */
export interface VerifyKeys {
  hmacSecret?: Buffer;
  publicKey?: KeyObject;
}

export interface VerifyOptions {
  audience: string;
  issuer?: string;
  /** Tolerance for clocks that disagree, on exp and nbf. */
  skewSeconds?: number;
  now?: () => number;
}

export type SigningKey = { alg: 'HS256'; secret: Buffer } | { alg: 'ES256' | 'RS256'; privateKey: KeyObject };

export class TokenError extends Error {
  constructor(readonly why: string) {
    super(`invalid token: ${why}`);
    this.name = 'TokenError';
  }
}

/** Tenant ids become path components of tier templates, so they follow the registry's component grammar. */
export const TENANT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
export const MIN_HMAC_SECRET_BYTES = 32;
const MAX_TOKEN_BYTES = 16 << 10;
const MAX_GRANTS = 256;
const B64URL = /^[A-Za-z0-9_-]*$/;

function b64(buf: Buffer | string): string {
  return Buffer.from(buf).toString('base64url');
}

/**
 * Strict base64url: only the URL alphabet, no padding, and canonical (the
 * unused low bits of the last character are zero). Node's decoder is lenient,
 * and a lenient decoder accepts several spellings of one signature.
 */
function unb64(s: string, what: string): Buffer {
  if (!B64URL.test(s) || s.length % 4 === 1) throw new TokenError(`${what} is not base64url`);
  const buf = Buffer.from(s, 'base64url');
  if (buf.toString('base64url') !== s) throw new TokenError(`${what} is not canonical base64url`);
  return buf;
}

function json(buf: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new TokenError(`${what} is not JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TokenError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** ES256 or RS256, from the key itself: the algorithm is never taken from anything a caller sends. */
export function algForKey(key: KeyObject): 'ES256' | 'RS256' {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (d?.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new Error(`unsupported key: want an EC P-256 key (ES256) or an RSA key of 2048 bits or more (RS256), got ${key.asymmetricKeyType} ${d?.namedCurve ?? d?.modulusLength ?? ''}`.trim());
}

export function signToken(claims: Claims, key: SigningKey): string {
  const header = b64(JSON.stringify({ alg: key.alg, typ: 'JWT' }));
  const payload = b64(JSON.stringify(claims));
  const input = `${header}.${payload}`;
  let sig: Buffer;
  if (key.alg === 'HS256') sig = createHmac('sha256', key.secret).update(input).digest();
  else {
    if (algForKey(key.privateKey) !== key.alg) throw new Error(`the private key cannot sign ${key.alg}`);
    // JWS wants ECDSA signatures as r||s (IEEE P1363), not DER.
    sig = cryptoSign('sha256', Buffer.from(input), key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey);
  }
  return `${input}.${b64(sig)}`;
}

function checkSignature(alg: string, input: string, sig: Buffer, keys: VerifyKeys): void {
  if (alg === 'HS256') {
    if (!keys.hmacSecret) throw new TokenError('HS256 is not accepted by this daemon');
    const want = createHmac('sha256', keys.hmacSecret).update(input).digest();
    if (sig.length !== want.length || !timingSafeEqual(sig, want)) throw new TokenError('bad signature');
    return;
  }
  if (alg === 'ES256' || alg === 'RS256') {
    // The public key decides which of the two it can check: an RSA key never verifies an "ES256" token and
    // the HMAC secret never verifies either (no alg confusion with a public key used as an HMAC secret).
    if (!keys.publicKey || algForKey(keys.publicKey) !== alg) throw new TokenError(`${alg} is not accepted by this daemon`);
    if (alg === 'ES256' && sig.length !== 64) throw new TokenError('bad signature');
    const key = alg === 'ES256' ? { key: keys.publicKey, dsaEncoding: 'ieee-p1363' as const } : keys.publicKey;
    if (!cryptoVerify('sha256', Buffer.from(input), key, sig)) throw new TokenError('bad signature');
    return;
  }
  // "none" and every other algorithm.
  // Only a string is quoted back: stringifying a nested value from a token's header would recurse.
  throw new TokenError(`algorithm ${typeof alg === 'string' ? JSON.stringify(alg).slice(0, 40) : `of type ${typeof alg}`} is not accepted`);
}

function numericDate(v: unknown, name: string, required: boolean): number | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TokenError(`${name} is missing or not a number`);
  return v;
}

/** The `access` claim → grants. Anything unexpected rejects the token: an unreadable grant is not "no grant". */
export function grantsFromClaim(access: unknown): Grant[] {
  if (!Array.isArray(access)) throw new TokenError('access is missing or not a list');
  if (access.length > MAX_GRANTS) throw new TokenError(`access has more than ${MAX_GRANTS} entries`);
  return access.map((a, i) => {
    if (a === null || typeof a !== 'object' || Array.isArray(a)) throw new TokenError(`access[${i}] is not an object`);
    const { repository, actions } = a as Record<string, unknown>;
    if (typeof repository !== 'string') throw new TokenError(`access[${i}].repository is not a string`);
    let pattern;
    try {
      pattern = parsePattern(repository);
    } catch (err) {
      throw new TokenError(`access[${i}]: ${(err as Error).message}`);
    }
    if (!Array.isArray(actions) || actions.some((x) => !ACTIONS.includes(x as Action))) throw new TokenError(`access[${i}].actions must list pull and/or push`);
    return { pattern, actions: new Set(actions as Action[]) };
  });
}

/** Checks a token completely (signature, exp, nbf, aud, iss, claims) and returns who it speaks for. */
export function verifyToken(token: string, keys: VerifyKeys, opts: VerifyOptions): Identity {
  if (typeof token !== 'string' || token.length === 0) throw new TokenError('missing');
  if (token.length > MAX_TOKEN_BYTES) throw new TokenError('too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('not a compact JWS');
  const [h, p, s] = parts as [string, string, string];
  const header = json(unb64(h, 'header'), 'header');
  if (header.crit !== undefined) throw new TokenError('crit header is not supported');
  if (typeof header.alg !== 'string') throw new TokenError('alg is missing');
  const sig = unb64(s, 'signature');
  const payload = unb64(p, 'payload');
  // Signature before claims: nothing in an unsigned payload is looked at.
  checkSignature(header.alg, `${h}.${p}`, sig, keys);
  const c = json(payload, 'payload');

  const now = (opts.now ?? Date.now)() / 1000;
  const skew = opts.skewSeconds ?? 30;
  const exp = numericDate(c.exp, 'exp', true)!;
  if (now >= exp + skew) throw new TokenError('expired');
  const nbf = numericDate(c.nbf, 'nbf', false);
  if (nbf !== undefined && now + skew < nbf) throw new TokenError('not yet valid');
  const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) && c.aud.every((x) => typeof x === 'string') ? (c.aud as string[]) : undefined;
  if (!aud) throw new TokenError('aud is missing');
  if (!aud.includes(opts.audience)) throw new TokenError('wrong audience');
  if (opts.issuer !== undefined && c.iss !== opts.issuer) throw new TokenError('wrong issuer');
  if (typeof c.sub !== 'string' || !TENANT_RE.test(c.sub)) throw new TokenError('sub is missing or not a tenant id');
  const grants = grantsFromClaim(c.access);
  const identity: Identity = { tenant: c.sub, grants };
  if (typeof c.jti === 'string' && c.jti.length <= 128) identity.tokenId = c.jti;
  return identity;
}

/** The token of `authorization: Bearer <token>`; TokenError for anything else (several values, another scheme). */
export function bearerToken(values: readonly unknown[]): string {
  if (values.length === 0) throw new TokenError('missing');
  if (values.length > 1) throw new TokenError('several authorization values');
  const v = values[0];
  if (typeof v !== 'string') throw new TokenError('authorization is not text');
  const m = /^Bearer +([^\s]+)\s*$/i.exec(v);
  if (!m) throw new TokenError('authorization is not a bearer token');
  return m[1]!;
}

/** The public key to verify with, given a PEM public key or a private key (its public half). */
export function publicKeyFrom(pem: string | Buffer): KeyObject {
  const key = createPublicKey(pem);
  algForKey(key);
  return key;
}
