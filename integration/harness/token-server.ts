// A small token issuer for distribution's `auth: token` mode, test-only.
// It implements just enough of https://distribution.github.io/distribution/spec/auth/token/
// (GET with basic auth) and .../spec/auth/oauth/ (POST password and
// refresh_token grants) to drive the client's auth code against the real
// registry. Tokens are RS256 JWTs whose `x5c` header carries a self-signed
// certificate that the registry trusts as its rootcertbundle: that is how
// distribution 2.8 finds the signing key (registry/auth/token/token.go).
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SigningCert {
  certPem: string;
  key: KeyObject;
  /** Base64 DER, as the x5c header wants it. */
  certDerB64: string;
}

let cached: SigningCert | undefined;

/** A self-signed RSA certificate made with openssl (once per process). */
export function signingCert(): SigningCert {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'bkcache-cert-'));
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3', '-subj', '/CN=bkcache test token issuer',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdio: 'pipe' },
    );
    const certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const key = createPrivateKey(readFileSync(join(dir, 'key.pem'), 'utf8'));
    cached = { certPem, key, certDerB64: new X509Certificate(certPem).raw.toString('base64') };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export interface TokenServerOptions {
  service: string;
  issuer: string;
  /** username → password */
  users: Record<string, string>;
  /** refresh (identity) token → username */
  refreshTokens?: Record<string, string>;
  /** Grant anonymous requests pull access (like public repositories). */
  anonymousPull?: boolean;
  expiresInS?: number;
}

export interface TokenRequestLog {
  method: string;
  grant: 'basic' | 'anonymous' | 'password' | 'refresh_token' | 'rejected';
  scopes: string[];
}

export interface TokenServer {
  realm: string;
  requests: TokenRequestLog[];
  /** Answer GET with 404 (services that only do OAuth2 POST). */
  getDisabled: boolean;
  stop(): Promise<void>;
}

function issue(opts: TokenServerOptions, cert: SigningCert, subject: string, scopes: string[], pullOnly: boolean): string {
  const now = Math.floor(Date.now() / 1000);
  const access = scopes
    .map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = (rest.pop() ?? '').split(',').filter(Boolean);
      return { type, name: rest.join(':'), actions: pullOnly ? actions.filter((a) => a === 'pull') : actions };
    })
    .filter((a) => a.type === 'repository' && a.actions.length > 0);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [cert.certDerB64] };
  // aud is a plain string: distribution 2.8's ClaimSet.Audience is a string.
  const claims = {
    iss: opts.issuer,
    sub: subject,
    aud: opts.service,
    exp: now + (opts.expiresInS ?? 300),
    nbf: now - 10,
    iat: now,
    jti: randomUUID(),
    access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), cert.key))}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const cert = signingCert();
  const requests: TokenRequestLog[] = [];
  const state = { getDisabled: false };

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const grant = (res: ServerResponse, subject: string, scopes: string[], pullOnly: boolean, refresh?: string) => {
    const token = issue(opts, cert, subject, scopes, pullOnly);
    reply(res, 200, { token, access_token: token, expires_in: opts.expiresInS ?? 300, issued_at: new Date().toISOString(), refresh_token: refresh });
  };

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/token') return reply(res, 404, { error: 'not found' });
      if (req.method === 'GET') {
        const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
        if (state.getDisabled) {
          requests.push({ method: 'GET', grant: 'rejected', scopes });
          return reply(res, 404, { error: 'use POST' });
        }
        const auth = req.headers.authorization;
        if (!auth) {
          requests.push({ method: 'GET', grant: 'anonymous', scopes });
          // Anonymous: pull only where allowed, else a token granting nothing
          // (the registry then answers 401 insufficient_scope, as Hub does).
          return grant(res, '', opts.anonymousPull ? scopes : [], true);
        }
        const [user, ...pw] = Buffer.from(auth.replace(/^Basic /i, ''), 'base64').toString('utf8').split(':');
        if (!user || opts.users[user] !== pw.join(':')) {
          requests.push({ method: 'GET', grant: 'rejected', scopes });
          return reply(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
        }
        requests.push({ method: 'GET', grant: 'basic', scopes });
        return grant(res, user, scopes, false);
      }
      if (req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        const type = form.get('grant_type');
        if (type === 'password') {
          const user = form.get('username') ?? '';
          if (opts.users[user] === undefined || opts.users[user] !== form.get('password')) {
            requests.push({ method: 'POST', grant: 'rejected', scopes });
            return reply(res, 401, { error: 'invalid_grant' });
          }
          requests.push({ method: 'POST', grant: 'password', scopes });
          return grant(res, user, scopes, false);
        }
        if (type === 'refresh_token') {
          const rt = form.get('refresh_token') ?? '';
          const user = opts.refreshTokens?.[rt];
          if (!user) {
            requests.push({ method: 'POST', grant: 'rejected', scopes });
            return reply(res, 401, { error: 'invalid_grant' });
          }
          requests.push({ method: 'POST', grant: 'refresh_token', scopes });
          return grant(res, user, scopes, false, rt);
        }
        return reply(res, 400, { error: 'unsupported_grant_type' });
      }
      reply(res, 405, { error: 'method not allowed' });
    } catch (err) {
      reply(res, 500, { error: String(err) });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    get getDisabled() {
      return state.getDisabled;
    },
    set getDisabled(v: boolean) {
      state.getDisabled = v;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
