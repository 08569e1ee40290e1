// Caps concurrent calls of one kind. Waiters queue (a solver starting many
// exports at once should not see failures), up to a bound past which calls
// are refused with RESOURCE_EXHAUSTED; a waiter whose call is cancelled leaves
// the queue. The slot mechanics are the shared src/semaphore.ts.
import { BkError, resourceExhausted } from '../errors.js';
import { Semaphore as Slots } from '../semaphore.js';

export class Semaphore {
  private readonly slots: Slots;

  constructor(
    limit: number,
    private readonly maxQueued: number,
    private readonly what: string,
  ) {
    this.slots = new Slots(limit);
  }

  get inUse(): number {
    return this.slots.inUse;
  }

  /** Resolves with a release function once a slot is free. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    const cancelled = () => new BkError('CANCELLED', `${this.what} cancelled while waiting for a slot`);
    if (signal?.aborted) throw cancelled();
    if (this.slots.inUse >= this.slots.size && this.slots.queued >= this.maxQueued) {
      throw resourceExhausted(`too many concurrent ${this.what} calls (${this.slots.size} running, ${this.maxQueued} queued)`, {
        reason: 'too-many-calls',
      });
    }
    try {
      return await this.slots.acquire(signal);
    } catch (err) {
      if (signal?.aborted) throw cancelled();
      throw err;
    }
  }
}
