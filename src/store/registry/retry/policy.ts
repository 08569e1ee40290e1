// When and how long to wait before trying a registry request again.
// Registries shed load with 429 + Retry-After (RFC 9110 §10.2.3,
// https://www.rfc-editor.org/rfc/rfc9110#field.retry-after) and 503s; proxies
// in front of them drop connections. Auth and validation errors (other 4xx)
// are final: retrying them only multiplies the damage (e.g. account lockouts).
import { BkError } from '../../../errors.js';
import { RegistryError } from '../errcode/index.js';

export interface RetryOptions {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** First backoff step; doubles each attempt. */
  baseDelayMs: number;
  /** Cap on one backoff step (Retry-After may ask for more, within maxElapsedMs). */
  maxDelayMs: number;
  /** Give up once this much time has passed since the first attempt. */
  maxElapsedMs: number;
  /** Source of randomness in [0,1), replaceable for tests. */
  random?: () => number;
}

export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxElapsedMs: 120_000,
};

/** Statuses that say "later" rather than "no". 501 (not implemented) is final. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

// Error codes of node and undici that mean the connection broke, not that the
// request was wrong. https://undici.nodejs.org/#/docs/api/Errors
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** True for connection-level failures (resets, refused, timeouts), looking through causes. */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof BkError && !(e.reason === 'network')) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  }
  return false;
}

/** Whether an error from one attempt is worth another attempt. */
export function isRetryable(err: unknown): boolean {
  // One budget per failure: an operation whose own retries are spent is not
  // retried again by the layer around it (an upload around its POST, a
  // request around its token fetch), which would multiply the attempts.
  if (spent.has(err as object)) return false;
  if (err instanceof RegistryError) return isRetryableStatus(err.status);
  if (err instanceof BkError) return err.reason === 'network';
  return isNetworkError(err);
}

/**
 * Parses Retry-After: delta-seconds or an HTTP-date. Returns milliseconds
 * from `now`, or undefined when absent or unparsable.
 */
export function parseRetryAfter(value: string | undefined | null, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/**
 * The wait before attempt number `attempt + 1` (attempt counts from 1).
 * Exponential with "equal jitter" (half fixed, half random) so waits never
 * collapse to zero yet concurrent clients spread out.
 * https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 * A server's Retry-After wins when present: it knows its own recovery time,
 * up to the whole time budget (a "Retry-After: 999999999" must not park a
 * loop that does not check the budget itself).
 */
/**
 * Whether a wait of `delayMs`, after `elapsedMs` already spent, leaves no
 * time budget: refused at equality too, since such a wait could only end in
 * one last attempt at the limit (and a Retry-After is capped at the whole
 * budget, so with nothing spent yet it would otherwise be waited in full).
 * The one rule for every retry loop (withRetry, blobs.ts's chunk resume).
 */
export function overBudget(elapsedMs: number, delayMs: number, opts: RetryOptions): boolean {
  return elapsedMs + delayMs >= opts.maxElapsedMs;
}

export function backoffDelay(attempt: number, opts: RetryOptions, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, opts.maxElapsedMs);
  const exp = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const random = opts.random ?? Math.random;
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** Retry-After carried on an error, when the server sent one. */
export function retryAfterOf(err: unknown): number | undefined {
  return (err as { retryAfterMs?: number } | undefined)?.retryAfterMs;
}

export interface RetryHooks {
  signal?: AbortSignal;
  /** Called before each wait, for logging and tests. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Overrides isRetryable for this call. */
  retryable?: (err: unknown) => boolean;
  /** Replaceable clock for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, fails with a final error, or the attempt or
 * time budget is spent. A wait that would end past the time budget is not
 * started: the last error is thrown at once, marked as exhausted.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions, hooks: RetryHooks = {}): Promise<T> {
  const now = hooks.now ?? Date.now;
  const wait = hooks.sleep ?? sleep;
  const retryable = hooks.retryable ?? isRetryable;
  const start = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (hooks.signal?.aborted || !retryable(err)) throw err;
      if (attempt >= opts.maxAttempts) throw exhausted(err, attempt);
      const delayMs = backoffDelay(attempt, opts, retryAfterOf(err));
      if (overBudget(now() - start, delayMs, opts)) throw exhausted(err, attempt);
      hooks.onRetry?.({ attempt, delayMs, error: err });
      await wait(delayMs, hooks.signal);
    }
  }
}

/**
 * The error to surface once retries are spent: rate limits stay
 * RESOURCE_EXHAUSTED, everything else becomes UNAVAILABLE (an outage that
 * outlived our retries), with the last failure as the cause.
 */
function exhausted(err: unknown, attempts: number): BkError {
  const msg = err instanceof Error ? err.message : String(err);
  const suffix = ` (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`;
  let out: BkError;
  if (err instanceof RegistryError) {
    const code = err.status === 429 ? 'RESOURCE_EXHAUSTED' : 'UNAVAILABLE';
    out = new RegistryError(code, msg + suffix, err.status, [...err.codes], { cause: err, reason: err.reason });
  } else {
    out = new BkError('UNAVAILABLE', msg + suffix, { cause: err, reason: 'network' });
  }
  spent.add(out);
  return out;
}

/** Errors that ended a withRetry loop (see isRetryable). */
const spent = new WeakSet<object>();
