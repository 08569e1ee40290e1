// The retry policy with a fake clock: what is retried, how long it waits,
// and that both budgets (attempts, elapsed time) hold.
import { describe, expect, it } from 'vitest';
import { BkError } from '../../../src/errors.js';
import { registryError } from '../../../src/store/registry/errcode/index.js';
import { backoffDelay, isRetryable, isRetryableStatus, parseRetryAfter, withRetry, type RetryOptions } from '../../../src/store/registry/retry/policy.js';

const OPTS: RetryOptions = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 10_000, random: () => 0.5 };

function fakeClock() {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
  };
}

const netErr = (code: string) => Object.assign(new Error(`socket ${code}`), { code });

describe('classification', () => {
  it('retries rate limits, 5xx outages and broken connections', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) expect(isRetryableStatus(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 405, 409, 416, 501]) expect(isRetryableStatus(s)).toBe(false);
    expect(isRetryable(registryError(503, '', 'x'))).toBe(true);
    expect(isRetryable(registryError(401, '', 'x'))).toBe(false);
    expect(isRetryable(registryError(403, '', 'x'))).toBe(false);
    expect(isRetryable(netErr('ECONNRESET'))).toBe(true);
    expect(isRetryable(netErr('UND_ERR_SOCKET'))).toBe(true);
    expect(isRetryable(new BkError('UNAVAILABLE', 'x', { reason: 'network', cause: netErr('EPIPE') }))).toBe(true);
    expect(isRetryable(new BkError('DATA_LOSS', 'x', { cause: netErr('ECONNRESET') }))).toBe(false);
    expect(isRetryable(new Error('plain'))).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('backoffDelay', () => {
  it('doubles per attempt with equal jitter, capped', () => {
    const lo = { ...OPTS, random: () => 0 };
    const hi = { ...OPTS, random: () => 0.999999 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, lo))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, hi))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('lets Retry-After win', () => {
    expect(backoffDelay(1, OPTS, 7000)).toBe(7000);
    expect(backoffDelay(3, OPTS, 0)).toBe(0);
  });

  it('never waits longer than the whole time budget, whatever Retry-After says', () => {
    expect(backoffDelay(1, OPTS, 999_999_999_000)).toBe(OPTS.maxElapsedMs);
  });
});

describe('withRetry', () => {
  it('returns the first success', async () => {
    const c = fakeClock();
    let n = 0;
    const r = await withRetry(
      async () => {
        if (++n < 3) throw registryError(503, '', 'op');
        return 'ok';
      },
      OPTS,
      c,
    );
    expect([r, n, c.waits]).toEqual(['ok', 3, [75, 150]]);
  });

  it('never retries auth and validation errors', async () => {
    for (const status of [400, 401, 403, 404]) {
      let n = 0;
      const err = await withRetry(
        async () => {
          n++;
          throw registryError(status, '', 'op');
        },
        OPTS,
        fakeClock(),
      ).catch((e: unknown) => e);
      expect(n).toBe(1);
      expect((err as BkError).code).not.toBe('UNAVAILABLE');
    }
  });

  it('stops at maxAttempts: 429 stays RESOURCE_EXHAUSTED, 5xx becomes UNAVAILABLE', async () => {
    let n = 0;
    const rate = await withRetry(
      async () => {
        n++;
        throw registryError(429, '{"errors":[{"code":"TOOMANYREQUESTS"}]}', 'op');
      },
      OPTS,
      fakeClock(),
    ).catch((e: unknown) => e as BkError);
    expect([n, rate.code]).toEqual([5, 'RESOURCE_EXHAUSTED']);
    const outage = await withRetry(async () => Promise.reject(registryError(502, '', 'op')), OPTS, fakeClock()).catch((e: unknown) => e as BkError);
    expect(outage.code).toBe('UNAVAILABLE');
    const net = await withRetry(async () => Promise.reject(netErr('ECONNRESET')), OPTS, fakeClock()).catch((e: unknown) => e as BkError);
    expect([net.code, net.reason]).toEqual(['UNAVAILABLE', 'network']);
  });

  /** withRetry on a fake clock of an operation that always fails with `status` and Retry-After: calls, waits, error code. */
  async function alwaysRetryAfter(status: number, retryAfterMs: number): Promise<[number, number[], string]> {
    const c = fakeClock();
    let n = 0;
    const err = await withRetry(
      async () => {
        n++;
        const e = registryError(status, '', 'op');
        e.retryAfterMs = retryAfterMs;
        throw e;
      },
      OPTS,
      c,
    ).catch((e: unknown) => e as BkError);
    return [n, c.waits, err.code];
  }

  it('does not start a wait that would use the whole time budget up, even at once', async () => {
    // Retry-After of an hour is capped at the 10 s budget; with no time spent yet, waiting it would leave none.
    expect(await alwaysRetryAfter(503, 3_600_000)).toEqual([1, [], 'UNAVAILABLE']);
  });

  it('honors Retry-After and does not start a wait past the time budget', async () => {
    // 4 s + 4 s fit in 10 s; a third 4 s wait would not.
    expect(await alwaysRetryAfter(429, 4000)).toEqual([3, [4000, 4000], 'RESOURCE_EXHAUSTED']);
  });

  it('stops waiting when cancelled', async () => {
    const ac = new AbortController();
    let n = 0;
    const p = withRetry(
      async () => {
        n++;
        throw registryError(503, '', 'op');
      },
      { ...OPTS, baseDelayMs: 10_000, maxDelayMs: 10_000, maxElapsedMs: 60_000 },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await expect(p).rejects.toThrow('stop');
    expect(n).toBe(1);
  });
});

describe('nested retries', () => {
  it('an error that spent an inner retry budget is not retried by an outer one', async () => {
    let calls = 0;
    const noWait = { sleep: async () => {} };
    const inner = () => withRetry(async () => {
      calls++;
      throw registryError(503, '', 'POST upload');
    }, OPTS, noWait);
    const err = await withRetry(inner, OPTS, noWait).then(() => undefined, (e: unknown) => e);
    expect((err as BkError).code).toBe('UNAVAILABLE');
    expect(isRetryable(err)).toBe(false);
    expect(calls).toBe(OPTS.maxAttempts);
  });
});
