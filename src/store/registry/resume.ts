// Blob downloads that outlive a broken connection. A retry of the GET covers
// failures before the response headers (client.ts); this covers the body: a
// proxy or load balancer that drops a long download halfway. The download
// goes on from the byte it reached with a Range request, which the
// distribution spec lets registries honour
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs);
// the caller's reopen() copes with a registry that answers 200 instead.
// The bytes are verified outside (verified()), over all attempts together.
//
// Every wait is bounded: silence by the HTTP client's idle timeout, a trickle
// by a minimum throughput (like curl's --speed-limit/--speed-time), and a
// registry that drops every connection after a few bytes by a cap on
// resumes in all, since each of those attempts makes "progress".
import { Readable } from 'node:stream';
import { BkError } from '../../errors.js';
import { holdErrors } from '../content.js';
import { backoffDelay, isRetryable, sleep, type RetryOptions } from './retry/policy.js';

export interface ResumeOptions {
  retry: RetryOptions;
  /** Reopens in all for one download, whatever progress each attempt made. */
  maxResumes: number;
  /**
   * The body must average at least this over every `windowMs` spent waiting
   * on the registry (time the reader is busy elsewhere does not count).
   */
  minBytesPerSecond: number;
  windowMs: number;
  /**
   * Time spent waiting on the registry for the whole download, every
   * attempt included (a small blob trickled through many resumes).
   */
  budgetMs: number;
  /** The download, for messages ("GET blob registry:h/r@sha256:..."). */
  what: string;
  signal?: AbortSignal;
}

/** A body too slow to finish in reasonable time: dropped and resumed like a broken one. */
function tooSlow(what: string, bytes: number, ms: number, min: number): BkError {
  return new BkError('UNAVAILABLE', `${what}: ${bytes} bytes in ${Math.round(ms / 1000)} s, below the ${min} bytes/s minimum`, { reason: 'network' });
}

/** Any failure of a download as a typed error: ours as they are, the transport's as UNAVAILABLE. */
function typed(err: unknown, what: string, signal?: AbortSignal): BkError {
  if (err instanceof BkError) return err;
  if (signal?.aborted) return new BkError('CANCELLED', `${what}: cancelled`, { cause: err });
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  return new BkError('UNAVAILABLE', `${what}: ${msg}${typeof code === 'string' ? ` (${code})` : ''}`, { cause: err, reason: 'network' });
}

/**
 * The bytes [from, end) of a blob, starting with `first` (opened at `from`).
 * When a body fails with a network error (or is too slow) before `end`, it
 * is reopened at the position reached after a backoff; it gives up with
 * UNAVAILABLE after retry.maxAttempts failures in a row without progress,
 * or after maxResumes reopens in all, and with DEADLINE_EXCEEDED once the
 * time spent waiting passes budgetMs. Errors are held until read (holdErrors()).
 */
export function resumingBody(first: Readable, from: number, end: number, reopen: (position: number) => Promise<Readable>, opts: ResumeOptions): Readable {
  const minPerWindow = (opts.minBytesPerSecond * opts.windowMs) / 1000;
  async function* bytes(): AsyncGenerator<Buffer> {
    let body = first;
    let position = from;
    let failures = 0;
    let resumes = 0;
    // Only time spent waiting for the registry counts, never time the reader spends elsewhere.
    let spent = 0;
    const overBudget = () => {
      if (spent > opts.budgetMs) {
        throw new BkError('DEADLINE_EXCEEDED', `${opts.what}: ${position - from} of ${end - from} bytes after ${Math.round(spent / 1000)} s waiting on the registry`, {
          reason: 'too-slow',
        });
      }
    };
    try {
      for (;;) {
        try {
          let waited = 0;
          let windowBytes = 0;
          const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
          for (;;) {
            const t0 = Date.now();
            const r = await it.next();
            waited += Date.now() - t0;
            spent += Date.now() - t0;
            if (r.done) return;
            position += r.value.length;
            windowBytes += r.value.length;
            failures = 0;
            if (position < end) overBudget();
            if (waited >= opts.windowMs) {
              if (windowBytes < minPerWindow) throw tooSlow(opts.what, windowBytes, waited, opts.minBytesPerSecond);
              waited = 0;
              windowBytes = 0;
            }
            yield r.value;
          }
        } catch (err) {
          body.destroy();
          // Every byte is here: whatever the connection did afterwards, the verifier judges the content.
          if (position >= end) return;
          if (opts.signal?.aborted || !isRetryable(err)) throw typed(err, opts.what, opts.signal);
          const msg = err instanceof Error ? err.message : String(err);
          if (++failures >= opts.retry.maxAttempts) {
            throw new BkError('UNAVAILABLE', `${opts.what}: download broke off at byte ${position} of ${end}, ${failures} times in a row: ${msg}`, { cause: err, reason: 'network' });
          }
          if (++resumes > opts.maxResumes) {
            throw new BkError('UNAVAILABLE', `${opts.what}: download broke off ${resumes} times (at byte ${position} of ${end}), over the limit of ${opts.maxResumes} resumes: ${msg}`, {
              cause: err,
              reason: 'too-many-resumes',
            });
          }
          overBudget();
          await sleep(backoffDelay(failures, opts.retry), opts.signal).catch((e: unknown) => {
            throw typed(e, opts.what, opts.signal);
          });
          const t0 = Date.now();
          body = holdErrors(await reopen(position));
          spent += Date.now() - t0;
        }
      }
    } finally {
      // The reader may stop early (a target that already had the blob): let the connection go.
      if (!body.destroyed) body.destroy();
    }
  }
  holdErrors(first);
  return holdErrors(Readable.from(bytes(), { objectMode: false }));
}
