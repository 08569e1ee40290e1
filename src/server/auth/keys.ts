// Reads the key files named in the config's `auth` section: the daemon needs
// the verifying half, `bkcache token` the signing half. Key material never
// appears in errors (only file names and key types do).
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { failedPrecondition } from '../../errors.js';
import { algForKey, MIN_HMAC_SECRET_BYTES, publicKeyFrom, type SigningKey, type VerifyKeys } from './token.js';

export interface AuthSettings {
  /** The `aud` every token must carry. */
  audience: string;
  /** When set, the `iss` every token must carry. */
  issuer?: string;
  /** HS256: a file holding the shared secret (at least 32 bytes; a trailing newline is ignored). */
  hmacSecretFile?: string;
  /** ES256 (EC P-256) or RS256 (RSA >= 2048) public key, PEM. */
  publicKeyFile?: string;
  /** The matching private key, PEM: `bkcache token` signs with it; without publicKeyFile the daemon verifies with its public half. */
  privateKeyFile?: string;
  clockSkewSeconds: number;
  /** Listen on TCP although no key is configured (every caller has full access). */
  allowUnauthenticatedTcp: boolean;
}

export const DEFAULT_AUDIENCE = 'bkcache';

export function defaultAuthSettings(): AuthSettings {
  return { audience: DEFAULT_AUDIENCE, clockSkewSeconds: 30, allowUnauthenticatedTcp: false };
}

export function authEnabled(a: AuthSettings): boolean {
  return !!(a.hmacSecretFile || a.publicKeyFile || a.privateKeyFile);
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw failedPrecondition(`auth: cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { reason: 'invalid-config' });
  }
}

function hmacSecret(file: string): Buffer {
  let buf = read(file, 'HMAC secret');
  // `openssl rand -hex 32 > file` and editors add a newline that is not part of the secret.
  while (buf.length && (buf[buf.length - 1] === 0x0a || buf[buf.length - 1] === 0x0d)) buf = buf.subarray(0, buf.length - 1);
  if (buf.length < MIN_HMAC_SECRET_BYTES) {
    throw failedPrecondition(`auth: the HMAC secret in ${file} is shorter than ${MIN_HMAC_SECRET_BYTES} bytes`, { reason: 'invalid-config' });
  }
  return buf;
}

function keyError(file: string, err: unknown): never {
  // crypto's messages name the failure ("unsupported", "bad decrypt"), never the key bytes.
  throw failedPrecondition(`auth: ${file}: ${(err as Error).message}`, { reason: 'invalid-config' });
}

/** The keys the daemon verifies with; undefined when auth is off. */
export function loadVerifyKeys(a: AuthSettings): VerifyKeys | undefined {
  if (!authEnabled(a)) return undefined;
  const keys: VerifyKeys = {};
  if (a.hmacSecretFile) keys.hmacSecret = hmacSecret(a.hmacSecretFile);
  const pem = a.publicKeyFile ?? a.privateKeyFile;
  if (pem) {
    const bytes = read(pem, 'key');
    try {
      keys.publicKey = publicKeyFrom(bytes);
    } catch (err) {
      keyError(pem, err);
    }
  }
  return keys;
}

/**
 * The key `bkcache token` signs with: the private key (ES256/RS256 by its
 * type) or the HMAC secret. `prefer` picks when both are configured.
 */
export function loadSigningKey(a: AuthSettings, prefer?: 'HS256' | 'ES256' | 'RS256'): SigningKey {
  const hmac = () => ({ alg: 'HS256' as const, secret: hmacSecret(a.hmacSecretFile!) });
  if (prefer === 'HS256' || (!a.privateKeyFile && a.hmacSecretFile)) {
    if (!a.hmacSecretFile) throw failedPrecondition('auth: HS256 needs auth.hmacSecretFile', { reason: 'invalid-config' });
    return hmac();
  }
  if (!a.privateKeyFile) throw failedPrecondition('auth: no signing key: set auth.privateKeyFile or auth.hmacSecretFile', { reason: 'invalid-config' });
  const bytes = read(a.privateKeyFile, 'private key');
  let privateKey;
  let alg;
  try {
    privateKey = createPrivateKey(bytes);
    alg = algForKey(privateKey);
  } catch (err) {
    keyError(a.privateKeyFile, err);
  }
  if (prefer && prefer !== alg) throw failedPrecondition(`auth: the private key signs ${alg}, not ${prefer}`, { reason: 'invalid-config' });
  return { alg, privateKey };
}
