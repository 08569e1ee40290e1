// Idle timeouts: a call that holds a slot must keep moving. A stream that
// makes no progress in either direction for limits.idleTimeoutSeconds (the
// daemon waits for a message that does not come, or for a reader that does
// not read) ends with DEADLINE_EXCEEDED, reason "idle-timeout", and its slot
// goes to the next caller. Time the daemon itself spends working (hashing,
// talking to a registry, waiting for a slot) is never counted as idle.
import type { EventEmitter } from 'node:events';
import { drained } from '../drain.js';
import { BkError } from '../errors.js';

export function idleError(what: string, ms: number): BkError {
  return new BkError('DEADLINE_EXCEEDED', `${what} for ${Math.round(ms / 1000)} s (limits.idleTimeoutSeconds)`, { reason: 'idle-timeout' });
}

/**
 * drained(), but a reader that takes nothing for `ms` fails the wait with
 * the idle error instead of holding the call (and its slot) forever.
 */
export async function drainedWithin(stream: EventEmitter, signal: AbortSignal, ms: number, what: string): Promise<void> {
  const idle = new AbortController();
  const timer = setTimeout(() => idle.abort(), ms);
  try {
    await drained(stream, AbortSignal.any([signal, idle.signal]));
  } finally {
    clearTimeout(timer);
  }
  if (idle.signal.aborted && !signal.aborted) throw idleError(what, ms);
}
