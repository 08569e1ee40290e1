// The CLI behaves like buildctl: BKCACHE_ADDR and global flags, TLS flags,
// progress through a daemon, spec attribute checks, errors in words (never
// grpc-js's), JSON errors, and the documented exit codes, all against real
// daemon and registry processes.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BK } from '../test/fixtures.js';
import { tempDir } from '../test/tmp.js';
import { BIN, runCli, runJson, type CliResult } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { freePort, startRegistry, type StartedRegistry } from './harness/registry.js';

const SRC = `type=local,src=${path.join(BK, 'local-index-max')}`;
const RAW_GRPC = /No connection established|Resolution note|Last error|grpc|14 UNAVAILABLE|\bError: /;

let d: DaemonProcess;
let reg: StartedRegistry;
let locked: StartedRegistry;
beforeAll(async () => {
  [d, reg, locked] = await Promise.all([startDaemon(), startRegistry(), startRegistry({ auth: 'htpasswd' })]);
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
  await Promise.all([reg?.stop(), locked?.stop()]);
});

/** The daemon's call log lines for `method` so far. */
const calls = (method: string) => d.logs.filter((l) => l.msg === 'call' && l.method === method).length;

describe('which daemon: BKCACHE_ADDR, --addr, global flags', () => {
  it('BKCACHE_ADDR makes inspect and copy go through the daemon', async () => {
    const [inspects, copies] = [calls('Inspect'), calls('Copy') + calls('CopyStream')];
    const env = { BKCACHE_ADDR: d.addr };
    await runJson(['inspect', '--import-cache', SRC, '--format', 'json'], { env });
    await runJson(['copy', '--import-cache', SRC, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, '--format', 'json'], { env });
    expect(calls('Inspect')).toBe(inspects + 1);
    expect(calls('Copy') + calls('CopyStream')).toBe(copies + 1);
  });

  it('--addr overrides BKCACHE_ADDR, and global flags may come before the command', async () => {
    const before = calls('Inspect');
    const r = await runCli(['--addr', d.addr, '--format', 'json', 'inspect', '--import-cache', SRC], { env: { BKCACHE_ADDR: 'unix:///nonexistent/bkcache.sock' } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).kind).toBe('index');
    expect(calls('Inspect')).toBe(before + 1);
  });

  it('without either, inspect runs in this process', async () => {
    const before = calls('Inspect');
    await runJson(['inspect', '--import-cache', SRC, '--format', 'json'], { env: { BKCACHE_ADDR: '' } });
    expect(calls('Inspect')).toBe(before);
  });
});

describe('TLS client flags (buildctl names)', () => {
  let tls: DaemonProcess;
  let dir: string;
  let port: number;
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  beforeAll(async () => {
    dir = tempDir('bkcache-cli-tls-');
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=bkcache test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
    writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:bkcache.test\n');
    writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const who of ['server', 'client']) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`);
      openssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`, '-out', `${who}.pem`);
    }
    port = await freePort();
    const f = (n: string) => path.join(dir, n);
    tls = await startDaemon({
      args: ['--addr', `tcp://127.0.0.1:${port}`, '--insecure-no-auth-tcp', '--tls-cert', f('server.pem'), '--tls-key', f('server.key'), '--tls-ca', f('ca.pem')],
    });
  });
  afterAll(async () => {
    await tls?.stop();
    tls?.cleanup();
  });

  it('--tlscacert, --tlscert, --tlskey and --tlsservername reach a daemon with mutual TLS', async () => {
    const f = (n: string) => path.join(dir, n);
    const r = await runCli([
      'inspect',
      '--addr',
      `tcp://127.0.0.1:${port}`,
      '--tlscacert',
      f('ca.pem'),
      '--tlscert',
      f('client.pem'),
      '--tlskey',
      f('client.key'),
      '--tlsservername',
      'bkcache.test',
      '--import-cache',
      SRC,
      '--format',
      'json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).kind).toBe('index');
  });

  it('a TLS failure is one sentence with what to check', async () => {
    const f = (n: string) => path.join(dir, n);
    // The certificate names bkcache.test, not 127.0.0.1.
    const r = await runCli(['health', '--addr', `tcp://127.0.0.1:${port}`, '--tlscacert', f('ca.pem'), '--tlscert', f('client.pem'), '--tlskey', f('client.key')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bkcache: error: (TLS with the daemon at tcp:\/\/127\.0\.0\.1:\d+ failed: .*--tlsservername|no daemon answered)/);
    expect(r.stderr).not.toMatch(RAW_GRPC);
  });

  it('TLS flags with a unix socket are a usage error', async () => {
    const r = await runCli(['health', '--addr', d.addr, '--tlscacert', '/x.pem']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TLS flags need a tcp:\/\/ address/);
  });
});

describe('copy', () => {
  it('ignore-error=true on a source skips its failure in process and through the daemon', async () => {
    const broken = `type=registry,ref=${locked.host}/no/creds:x,registry.insecure=true,ignore-error=true`;
    for (const extra of [[], ['--addr', d.addr]]) {
      const r = await runCli(['copy', '--import-cache', broken, '--import-cache', SRC, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, '--format', 'json', ...extra], {
        env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/warning: source 0 skipped \(ignore-error=true\)/);
      expect(JSON.parse(r.stdout).stats.uploaded).toBeGreaterThan(0);
      // Without the attribute the same source fails the copy.
      const strict = await runCli(['copy', '--import-cache', broken.replace(',ignore-error=true', ''), '--import-cache', SRC, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, ...extra], {
        env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' },
      });
      expect(strict.code).toBe(4);
    }
  });

  it('--progress works through --addr: the daemon streams its progress events', async () => {
    const src = `type=local,src=${path.join(BK, 'registry-index-oci-max')}`;
    const plain = await runCli(['copy', '--addr', d.addr, '--import-cache', src, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, '--progress', 'plain']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr.match(/^blob sha256:[a-f0-9]{64} uploaded /gm)).toHaveLength(8);
    expect(plain.stderr).toMatch(/^tagged latest -> sha256:/m);
    const json = await runCli(['copy', '--addr', d.addr, '--import-cache', src, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, '--progress', 'json']);
    const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'blob' && e.status === 'uploaded')).toHaveLength(8);
    expect(events.at(-1)).toMatchObject({ type: 'tag', tag: 'latest' });
  });
});

describe('bad input is refused with a suggestion, in process and in the daemon', () => {
  const cases: [string, RegExp][] = [
    ['image-manfest=true', /unknown attribute "image-manfest" for type=local; did you mean "image-manifest"\?/],
    ['mode=maxx', /invalid mode "maxx": want min, max; did you mean mode=max\?/],
    ['compression=lz4', /invalid compression "lz4": want uncompressed, gzip, estargz, zstd/],
  ];
  for (const [attr, message] of cases) {
    it(attr, async () => {
      for (const extra of [[], ['--addr', d.addr]]) {
        const r = await runCli(['copy', '--import-cache', SRC, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')},${attr}`, ...extra]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(message);
      }
    });
  }

  it('inspect with two --import-cache is a usage error', async () => {
    const r = await runCli(['inspect', '--import-cache', SRC, '--import-cache', SRC]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/inspect reads one cache; got 2 --import-cache flags .*\(see bkcache inspect --help\)/);
  });

  it('a directory that is not an OCI layout says so (exit 3, not found)', async () => {
    const dir = tempDir('bkcache-cli-');
    mkdirSync(path.join(dir, 'something'));
    const r = await runCli(['inspect', '--import-cache', `type=local,src=${dir}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${dir} is not an OCI layout (it has no index.json)`);
  });

  it('a digest mismatch names the source cache and the blob (exit 1)', async () => {
    const dir = tempDir('bkcache-cli-corrupt-');
    cpSync(path.join(BK, 'local-index-max'), dir, { recursive: true });
    const blobs = path.join(dir, 'blobs', 'sha256');
    const victim = readdirSync(blobs).sort((a, b) => statSync(path.join(blobs, b)).size - statSync(path.join(blobs, a)).size)[0]!;
    const file = path.join(blobs, victim);
    chmodSync(file, 0o644);
    const bytes = readFileSync(file);
    bytes[100] ^= 0xff;
    writeFileSync(file, bytes);
    const r = await runCli(['copy', '--import-cache', `type=local,src=${dir}`, '--export-cache', `type=local,dest=${tempDir('bkcache-cli-')}`, '--progress', 'quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bkcache: error: local:${dir}: blob sha256:${victim}: digest mismatch: expected sha256:${victim}, got sha256:`);
  });

  it('a misspelled command gets a suggestion', async () => {
    const r = await runCli(['inspct']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command "inspct"; did you mean "inspect"\?/);
  });
});

describe('registries on the loopback interface', () => {
  it('localhost and 127.0.0.1 registries use plain HTTP when HTTPS fails, without registry.insecure', async () => {
    const port = reg.host.split(':')[1];
    const out = await runJson<{ manifest: { digest: string } }>(['copy', '--import-cache', SRC, '--export-cache', `type=registry,ref=127.0.0.1:${port}/loopback/a:x`, '--format', 'json']);
    const back = await runJson<{ manifest: string }>(['inspect', '--import-cache', `type=registry,ref=localhost:${port}/loopback/a:x`, '--format', 'json']);
    expect(back.manifest).toBe(out.manifest.digest);
  });
});

/** Runs the CLI as the unprivileged user nobody (the test runs as root). */
function runAsNobody(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { uid: 65534, gid: 65534, env: { PATH: process.env.PATH ?? '', HOME: '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('daemon connection errors are sentences, never grpc-js text', () => {
  it('no daemon at a socket path', async () => {
    const r = await runCli(['inspect', '--addr', 'unix:///nonexistent/bkcache.sock', '--import-cache', SRC]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('bkcache: error: no daemon at unix:///nonexistent/bkcache.sock: the socket does not exist (is `bkcache serve` running there?) [UNAVAILABLE]\n');
  });

  it('nothing listening on a TCP port', async () => {
    const port = await freePort();
    const r = await runCli(['copy', '--addr', `tcp://127.0.0.1:${port}`, '--import-cache', SRC, '--export-cache', 'type=local,dest=/tmp/x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bkcache: error: no daemon at tcp:\/\/127\.0\.0\.1:\d+: connection refused/);
    expect(r.stderr).not.toMatch(RAW_GRPC);
  });

  it('--socket-mode and --socket-group decide who may connect; others get "permission denied on the socket" (exit 4)', async () => {
    const dir = tempDir('bkcache-cli-sock-');
    chmodSync(dir, 0o755);
    const owner = await startDaemon({ args: ['--addr', `unix://${dir}/owner.sock`, '--socket-mode', '0600'] });
    const shared = await startDaemon({ args: ['--addr', `unix://${dir}/shared.sock`, '--socket-mode', '0660', '--socket-group', 'nogroup'] });
    try {
      const denied = await runAsNobody(['health', '--addr', `unix://${dir}/owner.sock`]);
      expect(denied.code, denied.stderr).toBe(4);
      expect(denied.stderr).toMatch(/^bkcache: error: permission denied on the socket unix:\/\/.*owner\.sock/);
      const allowed = await runAsNobody(['health', '--addr', `unix://${dir}/shared.sock`]);
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(allowed.stdout).toBe('SERVING\n');
    } finally {
      for (const x of [owner, shared]) {
        await x.stop();
        x.cleanup();
      }
    }
  });

  it('--socket-group with an unknown group is a usage error', async () => {
    await expect(startDaemon({ args: ['--socket-group', 'no-such-group-bkcache'], timeoutMs: 10_000 })).rejects.toThrow(/exited 2[\s\S]*unknown group/);
  });
});

describe('formats, versions and exit codes', () => {
  it('bkcache version, --version and version --format json', async () => {
    const pkg = JSON.parse(execFileSync('cat', [path.join(BIN, '../../../../package.json')], { encoding: 'utf8' }));
    expect((await runCli(['version'])).stdout).toBe(`bkcache ${pkg.version}\n`);
    expect((await runCli(['--version'])).stdout).toBe(`bkcache ${pkg.version}\n`);
    expect(await runJson(['version', '--format', 'json'])).toEqual({ version: pkg.version, node: process.version });
  });

  it('help <command> and <command> --help print the same flags', async () => {
    for (const name of ['inspect', 'copy', 'serve', 'health', 'token', 'version', 'prune']) {
      const a = await runCli(['help', name]);
      const b = await runCli([name, '--help']);
      expect(a.code).toBe(0);
      expect(a.stdout).toBe(b.stdout);
      expect(a.stdout).toMatch(new RegExp(`^Usage: bkcache ${name}`));
    }
  });

  it('one --format vocabulary: json|text everywhere', async () => {
    const text = await runCli(['inspect', '--import-cache', SRC, '--format', 'text']);
    expect(text.stdout).toMatch(/^kind {8}index$/m);
    const bad = await runCli(['inspect', '--import-cache', SRC, '--format', 'table']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown --format table \(want json or text or dot or mermaid\)/);
    const du = await runCli(['du', '--import-cache', SRC, '--format', 'table']);
    expect(du.code).toBe(2);
    expect(du.stderr).toMatch(/unknown --format table \(want json or text\)/);
  });

  it('with --format json, errors are JSON too', async () => {
    const r = await runCli(['inspect', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')},tag=nope`, '--format', 'json']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stderr)).toEqual({ error: { code: 'NOT_FOUND', message: expect.stringContaining('tag "nope" not found'), exitCode: 3 } });
    const usage = await runCli(['--format', 'json', 'copy']);
    expect(JSON.parse(usage.stderr)).toEqual({ error: { code: 'USAGE', message: 'copy needs at least one --import-cache', exitCode: 2 } });
  });

  it('exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 denied', async () => {
    expect((await runCli(['inspect', '--import-cache', SRC])).code).toBe(0);
    expect((await runCli(['health', '--addr', 'unix:///nonexistent/x.sock'])).code).toBe(1);
    expect((await runCli(['inspect'])).code).toBe(2);
    expect((await runCli(['inspect', '--import-cache', `type=registry,ref=${reg.host}/no/such:cache,registry.insecure=true`])).code).toBe(3);
    const denied = await runCli(['inspect', '--import-cache', `type=registry,ref=${locked.host}/x:y,registry.insecure=true`], {
      env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' },
    });
    expect(denied.code, denied.stderr).toBe(4);
  });
});

describe('lazy loading (the timing is in npm run bench; this checks what loads)', () => {
  /** The gRPC, protobuf, HTTP and YAML modules a CLI run loaded. */
  async function heavyModules(args: string[]): Promise<number> {
    const dir = tempDir('bkcache-cli-preload-');
    const preload = path.join(dir, 'preload.cjs');
    writeFileSync(
      preload,
      "process.on('exit', () => process.stderr.write('HEAVY ' + Object.keys(require.cache).filter((k) => /node_modules\\/(undici|@grpc|protobufjs|yaml)\\//.test(k)).length + '\\n'));\n",
    );
    const r = await runCli(args, { env: { NODE_OPTIONS: `--require ${preload}`, BKCACHE_ADDR: '' } });
    return Number(/HEAVY (\d+)/.exec(r.stderr)![1]);
  }

  it('--help and inspect of a local cache load none of them; a daemon call does', async () => {
    expect(await heavyModules(['--help'])).toBe(0);
    expect(await heavyModules(['inspect', '--import-cache', SRC])).toBe(0);
    expect(await heavyModules(['health', '--addr', 'unix:///nonexistent/x.sock'])).toBeGreaterThan(0);
  });
});
