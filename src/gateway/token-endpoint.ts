// <gateway>/token: the realm of our Bearer challenges. Accepts what Docker
// clients send (https://distribution.github.io/distribution/spec/auth/token/
// and .../auth/oauth/): GET with Basic credentials, or an OAuth2 POST with
// grant_type=password or refresh_token. The password (or refresh token) is
// a bkcache token; the username is ignored. The answer is a gateway token
// narrowed to the requested scopes (auth.ts).
import { AuthFailure, parseScopes } from './auth.js';
import type { Call, GatewayContext } from './context.js';
import { DistError } from './errors.js';

const MAX_FORM_BYTES = 64 << 10;

function basicPassword(authorization: string | undefined): string | undefined {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authorization?.trim() ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon >= 0 ? text.slice(colon + 1) : undefined;
}

export async function tokenEndpoint(ctx: GatewayContext, call: Call): Promise<void> {
  if (!ctx.auth.enabled) throw new DistError('UNSUPPORTED', 'auth is off: no tokens to issue');
  let credential: string | undefined;
  let scopes: string[];
  if (call.method === 'POST') {
    const form = new URLSearchParams((await call.readBody(MAX_FORM_BYTES, 'token request')).toString('utf8'));
    const grant = form.get('grant_type');
    credential = grant === 'refresh_token' ? (form.get('refresh_token') ?? undefined) : grant === 'password' ? (form.get('password') ?? undefined) : undefined;
    scopes = form.getAll('scope');
  } else if (call.method === 'GET') {
    const authz = call.header('authorization');
    credential = basicPassword(authz) ?? /^Bearer (\S+)$/i.exec(authz?.trim() ?? '')?.[1];
    scopes = call.url.searchParams.getAll('scope');
  } else throw new DistError('UNSUPPORTED');
  if (!credential) throw new AuthFailure(false, 'no credentials at the token endpoint');
  const t = ctx.auth.issue(credential, parseScopes(scopes));
  call.identity = ctx.auth.verify(t.token).identity;
  call.sendJson(200, { token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt });
}
