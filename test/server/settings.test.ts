// Daemon settings: config files, listen addresses and the default socket
// fallback, the default store, and the call-slot semaphore.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { defaultListenSocket, parseAddress, socketCandidates } from '../../src/api/address.js';
import { applyConfigFile, defaultConfig, perTenantLimit } from '../../src/server/config.js';
import { resolveSpec } from '../../src/server/context.js';
import { Semaphore } from '../../src/server/semaphore.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-settings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('config file', () => {
  it('reads YAML, resolving paths relative to the file', () => {
    const f = path.join(tmp, 'bkcache.yaml');
    writeFileSync(
      f,
      `listen: [unix:///tmp/x.sock, "tcp://127.0.0.1:7070"]
root: store
metricsAddr: 127.0.0.1:9464
registry:
  hosts: { "127.0.0.1:5000": { insecure: true, mirrors: [mirror.local] } }
  credentialsFile: auth/config.json
limits: { maxConcurrentExports: 2, maxMessageBytes: 1048576 }
shutdownGraceSeconds: 5
log: { level: error }
`,
    );
    const cfg = applyConfigFile(defaultConfig(), f);
    expect(cfg.listen).toEqual(['unix:///tmp/x.sock', 'tcp://127.0.0.1:7070']);
    expect(cfg.root).toBe(path.join(tmp, 'store'));
    expect(cfg.backend.registry).toEqual({
      hosts: { '127.0.0.1:5000': { insecure: true, mirrors: ['mirror.local'] } },
      dockerConfig: path.join(tmp, 'auth/config.json'),
    });
    expect(cfg.limits.maxConcurrentExports).toBe(2);
    expect(cfg.limits.maxMessageBytes).toBe(1 << 20);
    expect(cfg.limits.maxConcurrentImports).toBe(16);
    expect(cfg.shutdownGraceMs).toBe(5000);
    expect(cfg.logLevel).toBe('error');
  });

  it('reads JSON, and refuses unknown keys and bad values', () => {
    const f = path.join(tmp, 'c.json');
    writeFileSync(f, JSON.stringify({ listen: 'tcp://0.0.0.0:1', tls: { cert: 'c.pem', key: 'k.pem', ca: 'ca.pem', clientAuth: true } }));
    const cfg = applyConfigFile(defaultConfig(), f);
    expect(cfg.listen).toEqual(['tcp://0.0.0.0:1']);
    expect(cfg.tls).toEqual({ cert: path.join(tmp, 'c.pem'), key: path.join(tmp, 'k.pem'), ca: path.join(tmp, 'ca.pem'), clientAuth: true });
    for (const bad of [{ lisen: [] }, { limits: { maxConcurrentExports: 0 } }, { tls: { cert: 'a', key: 'b', clientAuth: true } }, { log: { level: 'loud' } }]) {
      writeFileSync(f, JSON.stringify(bad));
      expect(() => applyConfigFile(defaultConfig(), f)).toThrow(BkError);
    }
  });
});

describe('addresses', () => {
  it('parses unix and tcp forms', () => {
    expect(parseAddress('unix:///run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(parseAddress('unix:/run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(parseAddress('tcp://127.0.0.1:7070')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 7070 });
    expect(parseAddress('[::1]:0')).toEqual({ kind: 'tcp', host: '[::1]', port: 0 });
    expect(() => parseAddress('http://x')).toThrow(BkError);
    expect(() => parseAddress('tcp://host:99999')).toThrow(BkError);
  });

  it('falls back from /run to $XDG_RUNTIME_DIR to /tmp/bkcache-$UID', async () => {
    const xdg = path.join(tmp, 'xdg');
    const c = socketCandidates({ XDG_RUNTIME_DIR: xdg });
    expect(c[0]).toBe('/run/bkcache/bkcache.sock');
    expect(c[1]).toBe(path.join(xdg, 'bkcache', 'bkcache.sock'));
    expect(c[2]).toMatch(/bkcache-[^/]+\/bkcache\.sock$/);
    // Whatever this machine allows, the choice is a candidate whose directory now exists.
    expect(c).toContain(await defaultListenSocket({ XDG_RUNTIME_DIR: xdg }));
  });
});

describe('default store', () => {
  const cfg = { ...defaultConfig(), root: '/var/lib/bkcache/store' };
  it('points specs without a place at the root', () => {
    expect(resolveSpec(cfg, { type: '', attrs: {} }, 'export')).toEqual({ type: 'local', attrs: { dest: cfg.root } });
    expect(resolveSpec(cfg, { type: 'local', attrs: { tag: 'v1' } }, 'import')).toEqual({ type: 'local', attrs: { tag: 'v1', src: cfg.root } });
    expect(resolveSpec(cfg, { type: 'local', attrs: { src: 'app' } }, 'import')).toEqual({ type: 'local', attrs: { src: '/var/lib/bkcache/store/app' } });
    // src= names a source, dest= a target: the other one is a usage error, never a fallback.
    expect(() => resolveSpec(cfg, { type: 'local', attrs: { dest: 'app' } }, 'import')).toThrow(/takes src=DIR, not dest=/);
    expect(() => resolveSpec(cfg, { type: 'local', attrs: { src: 'cache/b/app', dest: 'cache/a/app' } }, 'export')).toThrow(/takes dest=DIR, not src=/);
    expect(resolveSpec(cfg, { type: 'local', attrs: { src: '/abs' } }, 'import').attrs.src).toBe('/abs');
    const reg = { type: 'registry', attrs: { ref: 'h/r:t' } };
    expect(resolveSpec(cfg, reg, 'export')).toBe(reg);
  });
});

describe('semaphore', () => {
  it('queues past the limit, refuses past the queue, and drops cancelled waiters', async () => {
    const s = new Semaphore({ limit: 1, perTenant: 1, maxQueued: 1, queuedPerTenant: 1 }, 'export');
    const r1 = await s.acquire();
    const ac = new AbortController();
    const waiting = s.acquire(ac.signal);
    await expect(s.acquire()).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'CANCELLED' });
    const next = s.acquire();
    r1();
    const r2 = await next;
    expect(s.inUse).toBe(1);
    r2();
    r2(); // releasing twice is harmless
    expect(s.inUse).toBe(0);
  });

  it('one tenant never holds every slot nor fills the queue; a freed slot goes to a tenant under its cap', async () => {
    const s = new Semaphore({ limit: 4, perTenant: 2, maxQueued: 8, queuedPerTenant: 2 }, 'export');
    const a1 = await s.acquire(undefined, 'a');
    await s.acquire(undefined, 'a');
    // A's third and fourth calls wait although two slots are free; a fifth is refused (its queue is full).
    const a3 = s.acquire(undefined, 'a');
    const a4 = s.acquire(undefined, 'a');
    await expect(s.acquire(undefined, 'a')).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'too-many-calls' });
    expect(s.inUse).toBe(2);
    // B gets the free slots at once, past A's waiters.
    const b1 = await s.acquire(undefined, 'b');
    await s.acquire(undefined, 'b');
    expect(s.inUse).toBe(4);
    // A slot B frees goes to B's waiter, not to A (at its cap) who queued first.
    const b3 = s.acquire(undefined, 'b');
    b1();
    await b3;
    // A slot A frees goes to A's first waiter.
    let a3got = false;
    void a3.then(() => (a3got = true));
    a1();
    await a3;
    expect(a3got).toBe(true);
    expect(s.inUse).toBe(4);
    void a4;
    // Calls without a tenant (auth off) are capped in all only.
    const open = new Semaphore({ limit: 2, perTenant: 1, maxQueued: 1, queuedPerTenant: 1 }, 'import');
    await open.acquire();
    await open.acquire();
    expect(open.inUse).toBe(2);
  });
});

describe('limits in the config file', () => {
  it('takes the idle timeout, per-tenant caps and byte limits; a graph limit the import side cannot read back is refused', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-limits-'));
    try {
      const f = path.join(dir, 'c.yaml');
      writeFileSync(f, 'limits: { idleTimeoutSeconds: 5, maxExportsPerTenant: 1, maxQueuedPerTenant: 3, maxGraphBytes: 1048576, maxMetadataBytes: 8192, maxConcurrentFetches: 3 }\n');
      const l = applyConfigFile(defaultConfig(), f).limits;
      expect(l).toMatchObject({ idleTimeoutSeconds: 5, maxExportsPerTenant: 1, maxQueuedPerTenant: 3, maxGraphBytes: 1 << 20, maxMetadataBytes: 8192, maxConcurrentFetches: 3 });
      expect(perTenantLimit(l.maxImportsPerTenant, l.maxConcurrentImports)).toBe(8); // unset: half the pool
      expect(perTenantLimit(0, 1)).toBe(1);
      expect(perTenantLimit(9, 4)).toBe(4);
      writeFileSync(f, 'limits: { maxGraphBytes: 16777216 }\n');
      expect(() => applyConfigFile(defaultConfig(), f)).toThrow(/maxGraphBytes must be below 16777216/);
      writeFileSync(f, 'limits: { idleTimeoutSeconds: 0 }\n');
      expect(() => applyConfigFile(defaultConfig(), f)).toThrow(/positive integer/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
