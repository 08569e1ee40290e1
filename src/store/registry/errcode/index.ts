// Registry error bodies mapped to typed errors.
// Body format: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
// Docker's extra codes (TOOMANYREQUESTS...): https://distribution.github.io/distribution/spec/api/#errors
import { BkError, type ErrorCode } from '../../../errors.js';

export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/**
 * A failed registry response. `status` is the HTTP status and `codes` the
 * distribution error codes of the body, kept so callers can look closer
 * than the BkError code.
 */
export class RegistryError extends BkError {
  readonly status: number;
  readonly codes: readonly string[];
  /** The server's Retry-After, in milliseconds, when it sent one. */
  retryAfterMs?: number;
  constructor(code: ErrorCode, message: string, status: number, codes: string[], opts: { cause?: unknown; reason?: string } = {}) {
    super(code, message, opts);
    this.name = 'RegistryError';
    this.status = status;
    this.codes = codes;
  }
}

// What each distribution code means for us on a 4xx other than 401/403/429.
// NOT_FOUND only ever means "the registry says it is not there" (see codeFor).
const BY_CODE: Record<string, ErrorCode> = {
  UNAUTHORIZED: 'UNAUTHENTICATED',
  DENIED: 'PERMISSION_DENIED',
  TOOMANYREQUESTS: 'RESOURCE_EXHAUSTED',
  DIGEST_INVALID: 'DATA_LOSS',
  SIZE_INVALID: 'DATA_LOSS',
  MANIFEST_INVALID: 'INVALID_ARGUMENT',
  MANIFEST_UNVERIFIED: 'INVALID_ARGUMENT',
  NAME_INVALID: 'INVALID_ARGUMENT',
  TAG_INVALID: 'INVALID_ARGUMENT',
  PAGINATION_NUMBER_INVALID: 'INVALID_ARGUMENT',
  RANGE_INVALID: 'FAILED_PRECONDITION',
  BLOB_UPLOAD_INVALID: 'FAILED_PRECONDITION',
  UNSUPPORTED: 'FAILED_PRECONDITION',
  // A manifest PUT naming a blob the repository lacks is a caller ordering
  // problem, not a miss: import fallbacks must not take it for NOT_FOUND.
  MANIFEST_BLOB_UNKNOWN: 'FAILED_PRECONDITION',
  // Some registries send these with a 400 rather than a 404; they still mean absent.
  BLOB_UNKNOWN: 'NOT_FOUND',
  MANIFEST_UNKNOWN: 'NOT_FOUND',
  NAME_UNKNOWN: 'NOT_FOUND',
  BLOB_UPLOAD_UNKNOWN: 'NOT_FOUND',
};

function byStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405 || status === 501) return 'FAILED_PRECONDITION';
  if (status === 413) return 'RESOURCE_EXHAUSTED';
  if (status === 416) return 'FAILED_PRECONDITION';
  if (status === 429) return 'RESOURCE_EXHAUSTED';
  if (status >= 500) return 'UNAVAILABLE';
  if (status >= 400) return 'INVALID_ARGUMENT';
  // A status the request does not expect (a redirect on an upload, a 200
  // where 201 was due): the registry broke the protocol, not bkcache.
  return 'UNAVAILABLE';
}

/**
 * The BkError code for a response. A 404 is always NOT_FOUND; otherwise only
 * an explicit *_UNKNOWN code on a plain 4xx is. Auth failures, rate limits
 * and outages are decided by status whatever the body says: import fallback
 * chains test for NOT_FOUND and must never take an outage or a denial for a miss.
 */
export function codeFor(status: number, codes: readonly string[]): ErrorCode {
  if (status === 404) return 'NOT_FOUND';
  // 401/403/429/5xx are decided by status: bodies on them vary by vendor.
  if (status === 401 || status === 403 || status === 429 || status >= 500) return byStatus(status);
  // distribution pairs it with DIGEST_INVALID for one bad reference; the
  // manifest itself is fine, so this is not DATA_LOSS.
  if (codes.includes('MANIFEST_BLOB_UNKNOWN')) return 'FAILED_PRECONDITION';
  for (const c of codes) {
    const mapped = BY_CODE[c];
    if (mapped) return mapped;
  }
  return byStatus(status);
}

// Distribution codes are upper-case words ("BLOB_UNKNOWN"). Anything else
// is not a code we can act on, and would become a `reason` that gRPC
// metadata refuses (a newline or non-ASCII byte makes grpc-js throw).
const CODE = /^[A-Z0-9_]{1,64}$/;
// Registry text goes into our one-line messages and terminals: no control characters.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g;
const MAX_ENTRIES = 16;

/** Parses `{"errors":[...]}`; anything else yields no entries. */
export function parseErrorBody(body: string): RegistryErrorEntry[] {
  if (!body) return [];
  try {
    const doc = JSON.parse(body) as unknown;
    const errs = (doc as { errors?: unknown })?.errors;
    if (!Array.isArray(errs)) return [];
    return errs
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => ({ code: String(e.code).toUpperCase(), message: typeof e.message === 'string' ? e.message.replace(CONTROL, ' ') : undefined, detail: e.detail }))
      .filter((e) => CODE.test(e.code))
      .slice(0, MAX_ENTRIES);
  } catch {
    return [];
  }
}

/**
 * Builds the typed error for a failed response. `what` says what was being
 * done ("GET manifest registry:host/repo@sha256:..."); it must already be
 * free of credentials. Registry messages are short and safe to quote; the
 * detail field is dropped because some registries echo request data there.
 */
export function registryError(status: number, body: string, what: string, opts: { cause?: unknown } = {}): RegistryError {
  const entries = parseErrorBody(body);
  const codes = entries.map((e) => e.code);
  const code = codeFor(status, codes);
  const said = entries.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
  const msg = `${what}: HTTP ${status}${said ? ` (${said.slice(0, 300)})` : ''}`;
  const reason = codes[0] ? codes[0].toLowerCase().replace(/_/g, '-') : `http-${status}`;
  return new RegistryError(code, msg, status, codes, { reason, cause: opts.cause });
}

