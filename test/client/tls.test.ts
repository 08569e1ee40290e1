// TCP listeners with TLS and mutual TLS: certificates made with openssl for
// this run (a CA, a server certificate for 127.0.0.1, a client certificate).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/index.js';
import { synthetic } from './synthetic.js';
import { defaultConfig } from '../../src/server/config.js';
import { jsonLogger } from '../../src/server/log.js';
import { Daemon } from '../../src/server/server.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-tls-'));
const f = (n: string) => path.join(dir, n);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function makeCerts(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=bkcache test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`);
    openssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`, '-out', `${who}.pem`);
  }
}

let tlsOnly: Daemon;
let mtls: Daemon;

beforeAll(async () => {
  makeCerts();
  // TLS without bearer tokens: TCP without auth must be asked for explicitly.
  const base = { ...defaultConfig(), root: f('root'), logLevel: 'off' as const };
  base.auth.allowUnauthenticatedTcp = true;
  tlsOnly = new Daemon({ ...base, listen: ['tcp://127.0.0.1:0'], tls: { cert: f('server.pem'), key: f('server.key') } }, jsonLogger('off'));
  mtls = new Daemon({ ...base, listen: ['tcp://127.0.0.1:0'], tls: { cert: f('server.pem'), key: f('server.key'), ca: f('ca.pem'), clientAuth: true } }, jsonLogger('off'));
  await tlsOnly.start();
  await mtls.start();
});

afterAll(async () => {
  await tlsOnly?.shutdown(500);
  await mtls?.shutdown(500);
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('serves clients that trust its CA; plaintext clients fail', async () => {
    const c = connect(tlsOnly.addresses[0]!, { tls: { ca: f('ca.pem') } });
    expect(await c.health('', { timeoutMs: 5000 })).toBe('SERVING');
    c.close();
    const plain = connect(tlsOnly.addresses[0]!);
    await expect(plain.health('', { timeoutMs: 2000 })).rejects.toMatchObject({ code: expect.stringMatching(/UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL/) });
    plain.close();
  });

  it('with client auth, needs a client certificate signed by the CA', async () => {
    const good = connect(mtls.addresses[0]!, { tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') } });
    expect(await good.health('', { timeoutMs: 5000 })).toBe('SERVING');
    good.close();
    const anon = connect(mtls.addresses[0]!, { tls: { ca: f('ca.pem') } });
    await expect(anon.health('', { timeoutMs: 2000 })).rejects.toBeDefined();
    anon.close();
  });

  // Export has its own HTTP/2 connection (src/client/grpc-call.ts), so it is
  // checked over TLS apart from the unary calls above.
  it('exports over TLS and mutual TLS, checking the daemon name; without the right certificates it fails', async () => {
    const s = synthetic([1_500_000, 20_000]);
    const dest = (n: string) => `type=local,dest=${f(n)}`;
    const tls = connect(tlsOnly.addresses[0]!, { tls: { ca: f('ca.pem') } });
    const viaName = connect(tlsOnly.addresses[0]!, { tls: { ca: f('ca.pem'), serverName: 'localhost' } });
    const wrongName = connect(tlsOnly.addresses[0]!, { tls: { ca: f('ca.pem'), serverName: 'elsewhere.test' } });
    const good = connect(mtls.addresses[0]!, { tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') } });
    const anon = connect(mtls.addresses[0]!, { tls: { ca: f('ca.pem') } });
    const plain = connect(tlsOnly.addresses[0]!);
    try {
      for (const [c, n] of [[tls, 'tls'], [viaName, 'tls-name'], [good, 'mtls']] as const) {
        const res = await c.export(dest(n), s.graph, s.provider, { timeoutMs: 10_000 });
        expect(res.manifest?.digest, n).toMatch(/^sha256:/);
        expect(res.sentBytes, n).toBe(1_520_000 + 4 * 1_000);
      }
      for (const [c, n] of [[wrongName, 'wrong-name'], [anon, 'anon'], [plain, 'plain']] as const) {
        await expect(c.export(dest(n), s.graph, s.provider, { timeoutMs: 5_000 }), n).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      }
    } finally {
      for (const c of [tls, viaName, wrongName, good, anon, plain]) c.close();
    }
  });
});

