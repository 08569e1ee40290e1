// Loopback registries may fall back to plain HTTP; other TLS failures are
// explained. The TLS errors here are real: HTTPS to a plain HTTP server, and
// to a TLS server whose certificate nobody trusts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, isTlsFailure, tlsError } from '../../../src/store/registry/plain-http.js';
import { tempDir } from '../../tmp.js';

describe('isLoopbackHost', () => {
  it('localhost, 127.0.0.0/8 and ::1, with or without a port', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.1.2.3:80', '[::1]:5000', '::1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['registry.internal:5000', '10.0.0.1:5000', '128.0.0.1', '127.0.0.256', 'localhost.evil.com', '[::2]:5000', 'docker.io']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
});

describe('TLS failures', () => {
  let plain: http.Server;
  let tls: https.Server;
  beforeAll(async () => {
    const dir = tempDir('bkcache-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=untrusted', '-keyout', 'k.pem', '-out', 'c.pem'], { cwd: dir, stdio: 'pipe' });
    plain = http.createServer((_q, s) => s.end('plain'));
    tls = https.createServer({ key: readFileSync(path.join(dir, 'k.pem')), cert: readFileSync(path.join(dir, 'c.pem')) }, (_q, s) => s.end('tls'));
    await Promise.all([plain, tls].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  });
  afterAll(() => {
    plain?.close();
    tls?.close();
  });

  const failure = async (server: http.Server): Promise<unknown> =>
    request(`https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`).then(
      () => undefined,
      (e: unknown) => e,
    );

  it('HTTPS to a plain HTTP registry: "does not speak TLS", use registry.insecure=true', async () => {
    const err = await failure(plain);
    expect(isTlsFailure(err)).toBe(true);
    const e = tlsError(err, 'registry.internal:5000', 'HEAD manifest registry:registry.internal:5000/app:cache');
    expect(e.message).toBe(
      'HEAD manifest registry:registry.internal:5000/app:cache: registry.internal:5000 does not speak TLS (a plain HTTP registry?); add registry.insecure=true to the spec (or insecure: true for the host in the daemon config) to use plain HTTP',
    );
    expect(e.reason).toBe('tls');
  });

  it('an untrusted certificate: says so, with its code, and how to trust it', async () => {
    const err = await failure(tls);
    expect(isTlsFailure(err)).toBe(true);
    const e = tlsError(err, 'registry.internal:5000', 'GET x');
    expect(e.message).toMatch(/^GET x: the TLS certificate of registry.internal:5000 was refused \([A-Z_]+\); trust its CA \(NODE_EXTRA_CA_CERTS/);
  });

  it('a refused connection is not a TLS failure', async () => {
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const err = await request(`https://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(isTlsFailure(err)).toBe(false);
  });
});
