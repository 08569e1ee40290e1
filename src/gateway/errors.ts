// Distribution error codes and bodies, and the one place a BkError becomes
// an HTTP answer. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
// Bodies are built here from a fixed message per code (plus the caller's own
// request values at most), never from an upstream answer, so two requests
// that fail the same way get the same bytes whatever the upstream holds.
import { asBkError, BkError } from '../errors.js';

export type DistCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'UNAVAILABLE'
  | 'INTERNAL';

const STATUS: Record<DistCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

const MESSAGE: Record<DistCode, string> = {
  BLOB_UNKNOWN: 'blob unknown to registry',
  BLOB_UPLOAD_INVALID: 'blob upload invalid',
  BLOB_UPLOAD_UNKNOWN: 'blob upload unknown to registry',
  DIGEST_INVALID: 'provided digest did not match uploaded content',
  MANIFEST_BLOB_UNKNOWN: 'manifest references a blob the repository does not hold',
  MANIFEST_INVALID: 'manifest invalid',
  MANIFEST_UNKNOWN: 'manifest unknown',
  NAME_INVALID: 'invalid repository name',
  NAME_UNKNOWN: 'repository name not known to registry',
  SIZE_INVALID: 'provided length did not match content length',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  UNSUPPORTED: 'the operation is unsupported',
  TOOMANYREQUESTS: 'too many requests',
  RANGE_INVALID: 'invalid content range',
  UNAVAILABLE: 'service unavailable',
  INTERNAL: 'internal error',
};

/** An answer the gateway gives on purpose. `log` is for the operator only. */
export class DistError extends Error {
  readonly status: number;
  constructor(
    readonly code: DistCode,
    readonly log?: string,
    readonly headers: Record<string, string> = {},
    /** A fixed explanation for the client (the spec's `detail`); never built from a path or an upstream answer. */
    readonly detail?: string,
    /** Another status than the code's usual one, where the spec's list has no closer code (a bad query parameter: 400, not 405). */
    status?: number,
  ) {
    super(log ?? MESSAGE[code]);
    this.status = status ?? STATUS[code];
  }

  body(): string {
    return JSON.stringify({ errors: [{ code: this.code, message: MESSAGE[this.code], ...(this.detail ? { detail: this.detail } : {}) }] });
  }
}

export const distError = (code: DistCode, log?: string, headers?: Record<string, string>) => new DistError(code, log, headers);

/** What "not found" means on the route that failed. */
export type NotFoundCode = 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'NAME_UNKNOWN' | 'BLOB_UPLOAD_UNKNOWN';

/** The one mapping from a typed core error to a distribution error. */
export function fromError(err: unknown, notFound: NotFoundCode = 'NAME_UNKNOWN'): DistError {
  if (err instanceof DistError) return err;
  const e: BkError = asBkError(err);
  const log = e.message.split('\n')[0];
  switch (e.code) {
    case 'NOT_FOUND':
      return new DistError(notFound, log);
    case 'DATA_LOSS':
      return new DistError(e.reason === 'size-mismatch' ? 'SIZE_INVALID' : 'DIGEST_INVALID', log);
    case 'INVALID_ARGUMENT':
      if (e.reason === 'name-invalid') return new DistError('NAME_INVALID', log);
      return new DistError(e.reason === 'invalid-digest' ? 'DIGEST_INVALID' : 'MANIFEST_INVALID', log);
    case 'FAILED_PRECONDITION':
      if (e.reason === 'manifest-blob-unknown') return new DistError('MANIFEST_BLOB_UNKNOWN', log);
      if (e.reason === 'delete-unsupported') return new DistError('UNSUPPORTED', log);
      if (e.reason === 'range-invalid') return new DistError('RANGE_INVALID', log);
      if (e.reason === 'upload-unverifiable') return new DistError('BLOB_UPLOAD_INVALID', log);
      if (e.reason === 'still-named') return new DistError('DENIED', log, {}, 'a manifest in this repository, or an export in progress, still names it; nothing was deleted');
      if (e.reason === 'delete-unprovable') return new DistError('UNSUPPORTED', log, {}, 'the repository cannot be walked to prove nothing names it; nothing was deleted');
      return new DistError('DENIED', log);
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED':
      // The daemon's own credentials were refused upstream: an operator problem, not the caller's.
      return new DistError('UNAVAILABLE', `upstream refused the gateway's credentials: ${log}`);
    case 'RESOURCE_EXHAUSTED':
      return new DistError(e.reason === 'too-large' ? 'SIZE_INVALID' : 'TOOMANYREQUESTS', log);
    case 'UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
      return new DistError('UNAVAILABLE', log);
    case 'CANCELLED':
      return new DistError('UNAVAILABLE', log);
    default:
      return new DistError('INTERNAL', log);
  }
}
