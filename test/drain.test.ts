// drained(): the one wait for a writable's backpressure, on both sides of the
// Export and FetchBlob calls.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { drained } from '../src/drain.js';

const settled = async (p: Promise<void>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('drained', () => {
  it.each(['drain', 'close'])('resolves on %s and leaves no listener behind', async (event) => {
    const s = new EventEmitter();
    const ac = new AbortController();
    const p = drained(s, ac.signal);
    expect(await settled(p)).toBe(false);
    s.emit(event);
    expect(await settled(p)).toBe(true);
    expect(s.listenerCount('drain') + s.listenerCount('close')).toBe(0);
  });

  it('resolves when the signal aborts, or at once when it already has', async () => {
    const s = new EventEmitter();
    const ac = new AbortController();
    const p = drained(s, ac.signal);
    ac.abort();
    expect(await settled(p)).toBe(true);
    expect(s.listenerCount('drain')).toBe(0);
    expect(await settled(drained(s, ac.signal))).toBe(true);
  });
});
