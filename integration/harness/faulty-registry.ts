// A real registry behind the fault proxy, set up once per test file, with a
// store factory whose stores are closed and proxy rules cleared after each test.
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { BkError } from '../../src/errors.js';
import { RegistryStore, type RegistryStoreOptions } from '../../src/store/registry/index.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startRegistry, type StartedRegistry } from './registry.js';

export interface FaultyRegistry {
  /** Set in beforeAll. */
  reg: StartedRegistry;
  /** Set in beforeAll; reset after each test. */
  proxy: FaultProxy;
  /** A store for `repo` on the proxy: `defaults`, then `extra`. */
  store(repo: string, extra?: RegistryStoreOptions): RegistryStore;
}

export function faultyRegistry(defaults: RegistryStoreOptions): FaultyRegistry {
  const stores: RegistryStore[] = [];
  const env = {
    store(repo: string, extra: RegistryStoreOptions = {}) {
      const s = new RegistryStore(`${env.proxy.host}/${repo}`, { insecure: true, dockerConfig: false, ...defaults, ...extra });
      stores.push(s);
      return s;
    },
  } as FaultyRegistry;
  beforeAll(async () => {
    env.reg = await startRegistry();
    env.proxy = await startFaultProxy(env.reg.url);
  });
  afterAll(async () => {
    await env.proxy?.stop();
    await env.reg?.stop();
  });
  afterEach(async () => {
    env.proxy.reset();
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  return env;
}

/** The typed error a promise rejects with (fails the test when it resolves or throws anything else). */
export async function failure(p: Promise<unknown>): Promise<BkError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BkError);
  return err as BkError;
}
