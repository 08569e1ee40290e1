// Sealed values: what the gateway hands a client and later reads back
// (upload locations, bearer tokens it issues) without keeping any state.
// AES-256-GCM authenticates and hides the payload, so a client can neither
// read the upstream's upload URL nor point a sealed value at another
// upstream, repository or tenant; a purpose label is bound in as associated
// data, so an upload state never passes for a token. Any daemon with the
// same secret opens what another sealed: uploads survive restarts and move
// between daemons behind a load balancer.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export type Purpose = 'upload' | 'token';

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Sealed values travel in URLs and headers; anything longer is not ours. */
export const MAX_SEALED_CHARS = 8192;

export class Sealer {
  private readonly key: Buffer;

  /** `secret`: at least 32 bytes shared by every daemon that must open what the others seal. */
  constructor(secret: Buffer) {
    if (secret.length < 32) throw new Error('the gateway secret must be at least 32 bytes');
    this.key = Buffer.from(hkdfSync('sha256', secret, 'bkcache-gateway', 'seal v1', 32));
  }

  seal(purpose: Purpose, value: unknown): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
    return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
  }

  /** The sealed value, or undefined for anything forged, altered, truncated or sealed for another purpose. */
  open(purpose: Purpose, sealed: string): unknown {
    if (typeof sealed !== 'string' || sealed.length > MAX_SEALED_CHARS || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
    const buf = Buffer.from(sealed, 'base64url');
    if (buf.length < IV_BYTES + TAG_BYTES + 2) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, IV_BYTES));
      d.setAAD(Buffer.from(purpose));
      d.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
      const text = Buffer.concat([d.update(buf.subarray(IV_BYTES, buf.length - TAG_BYTES)), d.final()]).toString('utf8');
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }
}

/** A secret for one process only, when none is configured: sealed values then die with the process. */
export function ephemeralSecret(): Buffer {
  return randomBytes(32);
}
