// A counting semaphore with abortable waits. The registry client caps blob
// transfers per host with it (registries throttle, and a few streams already
// fill a link); the daemon caps concurrent calls with it (server/semaphore.ts),
// with a second cap per key (a tenant) so that one key can never hold every
// slot: a waiter whose key is at its cap is passed over for the next waiter
// whose key is not, instead of blocking the queue.

interface Waiter {
  key?: string;
  wake: () => void;
}

export class Semaphore {
  private free: number;
  private readonly waiters: Waiter[] = [];
  private readonly held = new Map<string, number>();

  /**
   * @param size slots in all
   * @param perKey slots one key may hold at once (acquire's `key`; callers without one are not capped)
   */
  constructor(
    readonly size: number,
    readonly perKey = Infinity,
  ) {
    this.free = size;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.waiters.length;
  }

  /** Callers of `key` waiting for a slot. */
  queuedFor(key: string): number {
    let n = 0;
    for (const w of this.waiters) if (w.key === key) n++;
    return n;
  }

  /** Slots `key` holds now. */
  heldBy(key: string): number {
    return this.held.get(key) ?? 0;
  }

  private mayTake(key: string | undefined): boolean {
    return this.free > 0 && (key === undefined || this.heldBy(key) < this.perKey);
  }

  private take(key: string | undefined): () => void {
    this.free--;
    if (key !== undefined) this.held.set(key, this.heldBy(key) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.free++;
      if (key !== undefined) {
        const n = this.heldBy(key) - 1;
        if (n > 0) this.held.set(key, n);
        else this.held.delete(key);
      }
      this.dispatch();
    };
  }

  /** Hands free slots to waiters, in queue order, skipping those whose key is at its cap. */
  private dispatch(): void {
    for (let i = 0; i < this.waiters.length && this.free > 0; ) {
      const w = this.waiters[i]!;
      if (!this.mayTake(w.key)) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      w.wake();
    }
  }

  /** Waits for a slot; the returned function releases it (idempotent). */
  async acquire(signal?: AbortSignal, key?: string): Promise<() => void> {
    // Waiters are only ever those that may not take a slot (dispatch() wakes the others), so none is passed.
    if (this.mayTake(key)) return this.take(key);
    let release!: () => void;
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        key,
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          // Taken synchronously, in dispatch(), so no one else can take it in between.
          release = this.take(key);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
    return release;
  }

  /** Slots currently in use (for tests). */
  get inUse(): number {
    return this.size - this.free;
  }
}
