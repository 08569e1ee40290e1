// A counting semaphore with abortable waits. The registry client caps blob
// transfers per host with it (registries throttle, and a few streams already
// fill a link); the daemon caps concurrent calls with it (server/semaphore.ts).

export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    this.free = size;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.waiters.length;
  }

  /** Waits for a slot; the returned function releases it (idempotent). */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.free > 0) {
      this.free--;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(wake);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      // Hand the slot straight to the next waiter instead of freeing it.
      if (next) next();
      else this.free++;
    };
  }

  /** Slots currently in use (for tests). */
  get inUse(): number {
    return this.size - this.free;
  }
}
