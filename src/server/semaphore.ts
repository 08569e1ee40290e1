// Caps concurrent calls of one kind. Waiters queue (a solver starting many
// exports at once should not see failures), up to a bound past which calls
// are refused with RESOURCE_EXHAUSTED; a waiter whose call is cancelled leaves the queue.
import { BkError, resourceExhausted } from '../errors.js';

export class Semaphore {
  private active = 0;
  private readonly waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(
    private readonly limit: number,
    private readonly maxQueued: number,
    private readonly what: string,
  ) {}

  get inUse(): number {
    return this.active;
  }

  /** Resolves with a release function once a slot is free. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw new BkError('CANCELLED', `${this.what} cancelled while waiting for a slot`);
    if (this.active < this.limit) {
      this.active++;
      return this.releaser();
    }
    if (this.waiters.length >= this.maxQueued) {
      throw resourceExhausted(`too many concurrent ${this.what} calls (${this.limit} running, ${this.maxQueued} queued)`, { reason: 'too-many-calls' });
    }
    await new Promise<void>((resolve, reject) => {
      const w = { resolve, reject };
      this.waiters.push(w);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(new BkError('CANCELLED', `${this.what} cancelled while waiting for a slot`));
          }
        },
        { once: true },
      );
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `active` stays counted.
      if (next) next.resolve();
      else this.active--;
    };
  }
}
