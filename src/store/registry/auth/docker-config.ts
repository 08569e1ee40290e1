// Credentials from Docker's config.json, as the docker CLI stores them:
// https://docs.docker.com/reference/cli/docker/login/#credential-stores
// Lookup order follows the CLI (cli/config/configfile): a per-host credHelper,
// else the global credsStore, else the inline `auths` entry.
// Helper protocol (`docker-credential-<name> get`, server URL on stdin, JSON out):
// https://github.com/docker/docker-credential-helpers#development
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BkError, invalidArgument } from '../../../errors.js';
import { DOCKER_HUB } from '../../../oci/reference.js';
import type { CredentialProvider, Credentials } from './credentials.js';

/** The key Docker uses for Docker Hub in config.json and with helpers. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * Reduces a config.json key ("https://index.docker.io/v1/", "http://host:5000",
 * "host/some/path") to the registry host it names, as the CLI's
 * ConvertToHostname does.
 */
export function normalizeAuthKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  if (k === 'index.docker.io' || k === 'registry-1.docker.io') return DOCKER_HUB;
  return k;
}

/** The server URL to hand a helper: Docker Hub has its historical URL. */
export function helperServerURL(host: string): string {
  return host === DOCKER_HUB ? DOCKER_HUB_AUTH_KEY : host;
}

function decodeEntry(e: AuthEntry, where: string): Credentials | undefined {
  const c: Credentials = {};
  if (e.auth) {
    const raw = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = raw.indexOf(':');
    // Never quote the value: it is the secret.
    if (i < 0) throw invalidArgument(`${where}: "auth" is not base64 of user:password`, { reason: 'bad-docker-config' });
    c.username = raw.slice(0, i);
    c.password = raw.slice(i + 1);
  } else if (e.username) {
    c.username = e.username;
    c.password = e.password ?? '';
  }
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return c.username || c.identityToken || c.registryToken ? c : undefined;
}

/**
 * Runs `docker-credential-<helper> get`. Resolves undefined when the helper
 * has nothing for the host (it then prints "credentials not found" and exits
 * non-zero); other failures are UNAUTHENTICATED errors that say which helper
 * failed but never what it printed on stdout (it may hold the secret).
 */
export function runCredentialHelper(helper: string, serverURL: string, timeoutMs = 30_000): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9_.-]+$/.test(helper)) {
    return Promise.reject(invalidArgument(`bad credential helper name ${JSON.stringify(helper)}`, { reason: 'bad-docker-config' }));
  }
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) =>
      reject(new BkError('UNAUTHENTICATED', `credential helper ${bin} could not be run: ${(e as Error).message}`, { cause: e, reason: 'credential-helper' })),
    );
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code !== 0) {
        // The helpers' documented "not found" message goes to stdout.
        if (/credentials not found/i.test(stdout) || /credentials not found/i.test(Buffer.concat(err).toString('utf8'))) {
          return resolve(undefined);
        }
        return reject(new BkError('UNAUTHENTICATED', `credential helper ${bin} exited with ${code}`, { reason: 'credential-helper' }));
      }
      try {
        const doc = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!doc.Secret) return resolve(undefined);
        // "<token>" as the user name marks an identity (refresh) token.
        if (doc.Username === '<token>') return resolve({ identityToken: doc.Secret });
        resolve({ username: doc.Username ?? '', password: doc.Secret });
      } catch {
        reject(new BkError('UNAUTHENTICATED', `credential helper ${bin} printed something that is not JSON`, { reason: 'credential-helper' }));
      }
    });
    child.stdin.on('error', () => {}); // the helper may exit before reading
    child.stdin.end(serverURL);
  });
}

/** Finds credentials for `host` in a parsed config file, running helpers as it says. */
export async function lookupDockerConfig(cfg: DockerConfigFile, host: string, where = 'config.json'): Promise<Credentials | undefined> {
  const helpers = cfg.credHelpers ?? {};
  for (const [key, helper] of Object.entries(helpers)) {
    if (normalizeAuthKey(key) === host) return runCredentialHelper(helper, helperServerURL(host));
  }
  if (cfg.credsStore) {
    const c = await runCredentialHelper(cfg.credsStore, helperServerURL(host));
    if (c) return c;
  }
  for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
    if (normalizeAuthKey(key) === host && entry) {
      const c = decodeEntry(entry, `${where} auths[${JSON.stringify(key)}]`);
      if (c) return c;
    }
  }
  return undefined;
}

/**
 * A provider reading a Docker config.json (the default location when `path`
 * is undefined). A missing file means anonymous; a malformed one is an
 * INVALID_ARGUMENT error. The file is re-read on each lookup so a
 * `docker login` in another terminal takes effect; lookups are per host and
 * rare (tokens are cached), so this costs nothing noticeable.
 */
export function dockerConfigCredentials(path?: string): CredentialProvider {
  return async (host) => {
    const file = path ?? defaultDockerConfigPath();
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new BkError('UNAUTHENTICATED', `cannot read ${file}: ${(err as Error).message}`, { cause: err, reason: 'bad-docker-config' });
    }
    let cfg: DockerConfigFile;
    try {
      cfg = JSON.parse(text) as DockerConfigFile;
    } catch {
      throw invalidArgument(`${file} is not valid JSON`, { reason: 'bad-docker-config' });
    }
    if (typeof cfg !== 'object' || cfg === null) throw invalidArgument(`${file} is not a JSON object`, { reason: 'bad-docker-config' });
    return lookupDockerConfig(cfg, host, file);
  };
}
