// Caps concurrent calls of one kind, in all and per tenant. Waiters queue (a
// solver starting many exports at once should not see failures), up to a
// bound past which calls are refused with RESOURCE_EXHAUSTED; a waiter whose
// call is cancelled leaves the queue. Per tenant: one tenant holds at most
// `perTenant` slots and has at most `queuedPerTenant` calls waiting, so a
// tenant that opens many calls (or many that then idle, until the idle
// timeout ends them) cannot take every slot or fill the queue; a slot that
// frees goes to the first waiter whose tenant is under its cap. Calls
// without a tenant (auth off: one trust domain) are capped in all only.
// The slot mechanics are the shared src/semaphore.ts.
import { BkError, resourceExhausted } from '../errors.js';
import { Semaphore as Slots } from '../semaphore.js';

export interface SlotLimits {
  limit: number;
  perTenant: number;
  maxQueued: number;
  queuedPerTenant: number;
}

export class Semaphore {
  private readonly slots: Slots;

  constructor(
    private readonly limits: SlotLimits,
    private readonly what: string,
  ) {
    this.slots = new Slots(limits.limit, limits.perTenant);
  }

  get inUse(): number {
    return this.slots.inUse;
  }

  /** Resolves with a release function once a slot is free for `tenant`. */
  async acquire(signal?: AbortSignal, tenant?: string): Promise<() => void> {
    const cancelled = () => new BkError('CANCELLED', `${this.what} cancelled while waiting for a slot`);
    if (signal?.aborted) throw cancelled();
    const l = this.limits;
    const mustWait = this.slots.inUse >= this.slots.size || (tenant !== undefined && this.slots.heldBy(tenant) >= l.perTenant);
    if (mustWait && this.slots.queued >= l.maxQueued) {
      throw resourceExhausted(`too many concurrent ${this.what} calls (${this.slots.inUse} running, ${this.slots.queued} queued)`, {
        reason: 'too-many-calls',
      });
    }
    if (mustWait && tenant !== undefined && this.slots.queuedFor(tenant) >= l.queuedPerTenant) {
      throw resourceExhausted(
        `too many concurrent ${this.what} calls of this tenant (${this.slots.heldBy(tenant)} running, ${this.slots.queuedFor(tenant)} queued)`,
        { reason: 'too-many-calls' },
      );
    }
    try {
      return await this.slots.acquire(signal, tenant);
    } catch (err) {
      if (signal?.aborted) throw cancelled();
      throw err;
    }
  }
}
