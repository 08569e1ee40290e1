// Blob downloads that outlive a broken connection. A retry of the GET covers
// failures before the response headers (client.ts); this covers the body: a
// proxy or load balancer that drops a long download halfway. The download
// goes on from the byte it reached with a Range request, which the
// distribution spec lets registries honour
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs);
// the caller's reopen() copes with a registry that answers 200 instead.
// The bytes are verified outside (verified()), over all attempts together.
import { Readable } from 'node:stream';
import { BkError } from '../../errors.js';
import { backoffDelay, isRetryable, sleep, type RetryOptions } from './retry/policy.js';

export interface ResumeOptions {
  retry: RetryOptions;
  signal?: AbortSignal;
}

/**
 * The bytes [from, end) of a blob, starting with `first` (opened at `from`).
 * When a body fails with a network error before `end`, it is reopened at the
 * position reached after a backoff; retry.maxAttempts failures in a row
 * without a byte of progress end it with the last error.
 */
export function resumingBody(first: Readable, from: number, end: number, reopen: (position: number) => Promise<Readable>, opts: ResumeOptions): Readable {
  async function* bytes(): AsyncGenerator<Buffer> {
    let body = first;
    let position = from;
    let failures = 0;
    for (;;) {
      try {
        for await (const chunk of body) {
          position += (chunk as Buffer).length;
          failures = 0;
          yield chunk as Buffer;
        }
        return;
      } catch (err) {
        body.destroy();
        if (position >= end || opts.signal?.aborted || !isRetryable(err)) throw err;
        if (++failures >= opts.retry.maxAttempts) {
          const msg = err instanceof Error ? err.message : String(err);
          throw new BkError('UNAVAILABLE', `download broke off at byte ${position} of ${end}, ${failures} times in a row: ${msg}`, { cause: err, reason: 'network' });
        }
        await sleep(backoffDelay(failures, opts.retry), opts.signal);
        body = await reopen(position);
      }
    }
  }
  return Readable.from(bytes(), { objectMode: false });
}
