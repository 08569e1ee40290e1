// Typed errors shared by every layer. Each carries a stable `code`; the gRPC
// server and the CLI map codes to statuses and exit codes in exactly one place
// each (src/api/status.ts, src/cli/main.ts), so the core never imports them.

export type ErrorCode =
  | 'INVALID_ARGUMENT' // bad spec, bad option, malformed input from the caller
  | 'NOT_FOUND' // ref, manifest or blob does not exist
  | 'UNAUTHENTICATED' // credentials missing or rejected
  | 'PERMISSION_DENIED' // authenticated but not allowed
  | 'UNAVAILABLE' // remote outage that outlived our retries
  | 'DATA_LOSS' // digest or size mismatch
  | 'FAILED_PRECONDITION' // input is well-formed but cannot be used (e.g. layer lacks annotations)
  | 'RESOURCE_EXHAUSTED' // size limits, rate limits
  | 'CANCELLED'
  | 'DEADLINE_EXCEEDED'
  | 'INTERNAL';

export class BkError extends Error {
  readonly code: ErrorCode;
  override readonly cause?: unknown;
  /** Short machine-readable reason inside a code, e.g. "looping-record". */
  readonly reason?: string;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; reason?: string } = {}) {
    super(message);
    this.name = 'BkError';
    this.code = code;
    this.cause = opts.cause;
    this.reason = opts.reason;
  }
}

export const invalidArgument = (msg: string, opts?: { cause?: unknown; reason?: string }) =>
  new BkError('INVALID_ARGUMENT', msg, opts);
export const notFound = (msg: string, opts?: { cause?: unknown; reason?: string }) => new BkError('NOT_FOUND', msg, opts);
export const dataLoss = (msg: string, opts?: { cause?: unknown; reason?: string }) => new BkError('DATA_LOSS', msg, opts);
export const failedPrecondition = (msg: string, opts?: { cause?: unknown; reason?: string }) =>
  new BkError('FAILED_PRECONDITION', msg, opts);
export const resourceExhausted = (msg: string, opts?: { cause?: unknown; reason?: string }) =>
  new BkError('RESOURCE_EXHAUSTED', msg, opts);

export function isNotFound(err: unknown): boolean {
  return err instanceof BkError && err.code === 'NOT_FOUND';
}

/** Wraps anything thrown into a BkError, keeping typed errors as they are. */
export function asBkError(err: unknown): BkError {
  if (err instanceof BkError) return err;
  if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new BkError('NOT_FOUND', err.message, { cause: err });
  }
  if (err instanceof Error && err.name === 'AbortError') {
    return new BkError('CANCELLED', err.message, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new BkError('INTERNAL', msg, { cause: err });
}
