// Daemon settings: config files, listen addresses and the default socket
// fallback, the default store, and the call-slot semaphore.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { defaultListenSocket, parseAddress, socketCandidates } from '../../src/api/address.js';
import { applyConfigFile, defaultConfig } from '../../src/server/config.js';
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
    expect(resolveSpec(cfg, { type: 'local', attrs: { dest: 'app' } }, 'import')).toEqual({ type: 'local', attrs: { src: '/var/lib/bkcache/store/app' } });
    expect(resolveSpec(cfg, { type: 'local', attrs: { src: '/abs' } }, 'import').attrs.src).toBe('/abs');
    const reg = { type: 'registry', attrs: { ref: 'h/r:t' } };
    expect(resolveSpec(cfg, reg, 'export')).toBe(reg);
  });
});

describe('semaphore', () => {
  it('queues past the limit, refuses past the queue, and drops cancelled waiters', async () => {
    const s = new Semaphore(1, 1, 'export');
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
});
