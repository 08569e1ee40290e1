// `bkcache token`: mints a bearer token for `bkcache serve`, signed with the
// key in the daemon's config (auth.privateKeyFile, else auth.hmacSecretFile).
// For operators: whoever can read that key can mint any token, admin included.
import { randomUUID } from 'node:crypto';
import { applyConfigFile, defaultConfig } from '../server/config.js';
import { loadSigningKey } from '../server/auth/keys.js';
import { ACTIONS, parsePattern, patternsOverlap, type Action, type Pattern } from '../server/auth/policy.js';
import { templatePattern, templatesFor } from '../server/auth/tiers.js';
import { signToken, TENANT_RE, type AccessClaim, type Claims } from '../server/auth/token.js';
import { parseFlags } from './args.js';
import { TOKEN_FLAGS } from './token.js';
import { UsageError } from './usage-error.js';

function duration(s: string, flag: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(s);
  if (!m) throw new UsageError(`invalid ${flag} ${JSON.stringify(s)}: want a number and s, m, h or d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function accessFlag(v: string): AccessClaim {
  const eq = v.lastIndexOf('=');
  if (eq <= 0) throw new UsageError(`invalid --access ${JSON.stringify(v)}: want PATTERN=pull,push`);
  const repository = v.slice(0, eq);
  try {
    parsePattern(repository);
  } catch (err) {
    throw new UsageError(`invalid --access: ${(err as Error).message}`);
  }
  const actions = [...new Set(v.slice(eq + 1).split(/[,+]/))];
  if (!actions.length || actions.some((a) => !ACTIONS.includes(a as Action))) throw new UsageError(`invalid --access ${JSON.stringify(v)}: actions are pull and push`);
  return { repository, actions: actions as Action[] };
}

export async function runToken(args: string[], help: string): Promise<number> {
  const { values } = parseFlags(args, TOKEN_FLAGS);
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  if (!values.config) throw new UsageError('token needs --config FILE (the daemon config with the signing key)');
  const sub = values.sub;
  if (!sub || !TENANT_RE.test(sub)) throw new UsageError('token needs --sub TENANT: lowercase letters and digits, with ., _ or - inside');
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`unknown --format ${format}`);
  const alg = values.alg;
  if (alg !== undefined && alg !== 'HS256' && alg !== 'ES256' && alg !== 'RS256') throw new UsageError(`unknown --alg ${alg}`);

  const cfg = applyConfigFile(defaultConfig(), values.config);
  const tiers = templatesFor(cfg.tiers, sub);
  let global: Pattern | undefined;
  let access: AccessClaim[];
  if (tiers) global = templatePattern(tiers.global, sub);
  if (values.access?.length) {
    access = values.access.map(accessFlag);
    if (values.admin && global) access.push({ repository: global.source, actions: ['pull', 'push'] });
  } else {
    if (!tiers || !global) throw new UsageError('give --access, or configure tiers in the config for default grants');
    const own = templatePattern(tiers.tenant, sub);
    access = [
      { repository: global.source, actions: values.admin ? ['pull', 'push'] : ['pull'] },
      { repository: own.source, actions: ['pull', 'push'] },
    ];
  }
  // The global tier is written by admin builds only: refuse to mint a tenant token that could push there,
  // whether through an explicit grant or a tenant id that makes the tenant tier overlap the global one.
  if (global && !values.admin) {
    for (const a of access) {
      if (a.actions.includes('push') && patternsOverlap(parsePattern(a.repository), global)) {
        throw new UsageError(`the grant ${a.repository} would give tenant ${sub} push on the global tier (${global.source}); pass --admin for an admin token`);
      }
    }
  }

  const now = Math.floor(Date.now() / 1000);
  const ttl = duration(values.ttl ?? '1h', '--ttl');
  if (ttl <= 0 || ttl > 366 * 86400) throw new UsageError('--ttl must be more than 0 and at most 366d');
  const nbf = now + (values['not-before'] ? duration(values['not-before'], '--not-before') : 0);
  const claims: Claims = {
    sub,
    aud: values.audience ?? cfg.auth.audience,
    iat: now,
    nbf,
    exp: nbf + ttl,
    jti: values.id ?? randomUUID(),
    access,
  };
  if (cfg.auth.issuer) claims.iss = cfg.auth.issuer;
  const jwt = signToken(claims, loadSigningKey(cfg.auth, alg));
  process.stdout.write(format === 'json' ? JSON.stringify({ token: jwt, claims }) + '\n' : jwt + '\n');
  return 0;
}
