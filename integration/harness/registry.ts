// Starts a real distribution registry (Debian's docker-registry, 2.8) for
// tests: 127.0.0.1 only, a temp storage root, deletes enabled, and one of
// three auth modes. Config reference: https://distribution.github.io/distribution/about/configuration/
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { signingCert, startTokenServer, type TokenServer } from './token-server.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** Default true; false makes DELETE answer 405 UNSUPPORTED. */
  deleteEnabled?: boolean;
  /** Token mode: let anonymous clients pull (default true). */
  anonymousPull?: boolean;
  /**
   * distribution's in-memory blob descriptor cache (`storage.cache.blobdescriptor: inmemory`), which
   * Debian's packaged /etc/docker/registry/config.yml turns on. Off by default: with it, a blob
   * removed from disk by a test (or seeded by `seedBlobs`) is not what the registry reports.
   */
  descriptorCache?: boolean;
  /** Where the registry's storage lives (default: a new directory in the OS temp dir). */
  parentDir?: string;
}

export interface StartedRegistry {
  /** "127.0.0.1:port", the registry name to put in references. */
  host: string;
  url: string;
  /** The registry process (for CPU accounting in benchmarks: /proc/PID/stat). */
  pid: number;
  auth: RegistryAuth;
  /** Valid credentials (htpasswd and token modes). */
  username?: string;
  password?: string;
  /** An identity (refresh) token the token server accepts (token mode). */
  identityToken?: string;
  tokenServer?: TokenServer;
  /** Where a blob's bytes live on disk (for tests that corrupt storage). */
  blobPath(digest: string): string;
  /**
   * Stores blobs in a repository by writing distribution's storage layout
   * (the blob's data and the repository's layer link), which is all a push
   * leaves behind when no blob descriptor cache is configured (none is):
   * benchmarks seed 10 000 blobs in seconds instead of minutes of uploads,
   * and the registry serves them as pushed ones.
   */
  seedBlobs(repository: string, blobs: Iterable<[digest: string, bytes: Buffer]>): void;
  /** Recent registry output, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const USER = 'bkcache';
const PASSWORD = 'correct horse battery staple';
const SERVICE = 'bkcache-test-registry';
const ISSUER = 'bkcache-test-issuer';

/** Ports freePort handed out in this process: the kernel offers released ports again (543 repeats in 3 000 calls here). */
const handedOut = new Set<number>();

/**
 * A loopback port nothing listens on now. Never one this process was given
 * before: a port handed out and not yet bound is free again to the kernel, so
 * two addresses of one README example could get the same port (EADDRINUSE).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    if (!handedOut.has(port) || attempt >= 100) {
      handedOut.add(port);
      return port;
    }
  }
}

function configYaml(root: string, port: number, authBlock: string, deleteEnabled: boolean, descriptorCache: boolean): string {
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
${descriptorCache ? '  cache:\n    blobdescriptor: inmemory\n' : ''}  filesystem:
    rootdirectory: ${root}/data
  delete:
    enabled: ${deleteEnabled}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: bkcache-test-secret
${authBlock}`;
}

async function waitReady(url: string, proc: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`registry exited with ${proc.exitCode}:\n${logs()}`);
    try {
      // Any answer (200, or 401 with auth on) means it is serving.
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`registry did not answer on ${url} within 15s:\n${logs()}`);
}

async function startOnce(opts: StartRegistryOptions): Promise<StartedRegistry> {
  const auth = opts.auth ?? 'none';
  const root = mkdtempSync(join(opts.parentDir ?? tmpdir(), 'bkcache-registry-'));
  const port = await freePort();
  let tokenServer: TokenServer | undefined;
  let authBlock = '';
  const creds: Partial<StartedRegistry> = {};

  if (auth === 'htpasswd') {
    // bcrypt is the only hash distribution's htpasswd auth accepts.
    const line = execFileSync('htpasswd', ['-Bbn', USER, PASSWORD], { encoding: 'utf8' }).trim();
    writeFileSync(join(root, 'htpasswd'), line + '\n');
    authBlock = `auth:\n  htpasswd:\n    realm: bkcache-test\n    path: ${root}/htpasswd\n`;
    Object.assign(creds, { username: USER, password: PASSWORD });
  } else if (auth === 'token') {
    const identityToken = 'bkcache-refresh-token-0123456789';
    tokenServer = await startTokenServer({
      service: SERVICE,
      issuer: ISSUER,
      users: { [USER]: PASSWORD },
      refreshTokens: { [identityToken]: USER },
      anonymousPull: opts.anonymousPull ?? true,
    });
    writeFileSync(join(root, 'token-ca.pem'), signingCert().certPem);
    authBlock =
      `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n` +
      `    rootcertbundle: ${root}/token-ca.pem\n`;
    Object.assign(creds, { username: USER, password: PASSWORD, identityToken });
  }

  const configPath = join(root, 'config.yml');
  writeFileSync(configPath, configYaml(root, port, authBlock, opts.deleteEnabled ?? true, opts.descriptorCache ?? false));

  let output = '';
  const proc = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-20_000);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const logs = () => output;
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await tokenServer?.stop();
    rmSync(root, { recursive: true, force: true });
  };

  try {
    await waitReady(url, proc, logs);
  } catch (err) {
    await stop();
    throw err;
  }
  // distribution's filesystem driver: <root>/docker/registry/v2/blobs/<alg>/<first 2 hex>/<hex>/data
  const blobPath = (digest: string) => {
    const [alg, hex] = digest.split(':') as [string, string];
    return join(root, 'data', 'docker', 'registry', 'v2', 'blobs', alg, hex.slice(0, 2), hex, 'data');
  };
  const seedBlobs = (repository: string, blobs: Iterable<[string, Buffer]>) => {
    for (const [digest, bytes] of blobs) {
      const [alg, hex] = digest.split(':') as [string, string];
      const data = blobPath(digest);
      mkdirSync(dirname(data), { recursive: true });
      writeFileSync(data, bytes);
      const link = join(root, 'data', 'docker', 'registry', 'v2', 'repositories', repository, '_layers', alg, hex, 'link');
      mkdirSync(dirname(link), { recursive: true });
      writeFileSync(link, digest);
    }
  };
  return { host: `127.0.0.1:${port}`, url, pid: proc.pid!, auth, tokenServer, blobPath, seedBlobs, logs, stop, ...creds };
}

/**
 * Starts a registry and waits until /v2/ answers. Retries on a new port if
 * the one picked was taken in between (freePort is inherently racy).
 */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<StartedRegistry> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      last = err;
      if (!/address already in use/i.test(String(err))) throw err;
    }
  }
  throw last;
}
