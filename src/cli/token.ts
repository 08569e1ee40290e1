// `bkcache token`: mints a bearer token for `bkcache serve`, signed with the
// key in the daemon's config (auth.privateKeyFile, else auth.hmacSecretFile).
// For operators: whoever can read that key can mint any token, admin included.
import type { FlagOptions } from './args.js';
import type { Command } from './commands.js';

const help = `Usage: bkcache token --config FILE --sub TENANT [--access PATTERN=ACTIONS ...] [--admin]
                     [--ttl DURATION] [--not-before DURATION] [--audience AUD] [--alg ALG] [--format text|json]

Mints a bearer token for a bkcache daemon, signed with the key of its config's
auth section: auth.privateKeyFile (ES256 for an EC P-256 key, RS256 for RSA)
or auth.hmacSecretFile (HS256). Prints the token on stdout. Clients send it as
gRPC metadata "authorization: Bearer <token>"; the client library and the CLI
read it from $BKCACHE_TOKEN.

  --config FILE        the daemon's config file (auth, and tiers for the default grants)
  --sub TENANT         the tenant: lowercase letters and digits, with '.', '_' or '-' inside
  --access P=ACTIONS   a grant: a repository pattern and pull, push or pull,push. Repeat.
                       Patterns: HOST/PATH for registry caches, local/PATH under the
                       daemon's root, file/PATH for other local paths; '*' is one or more
                       characters of a segment, '**' one or more whole segments.
                       Without --access the grants come from the config's tiers: pull on
                       the global tier, pull and push on the tenant's own tier.
  --admin              also push on the global tier (admin builds). Without it, a grant that
                       would let the tenant push into the global tier is refused.
  --ttl DURATION       lifetime, e.g. 90s, 30m, 12h, 7d (default 1h; at most 366d)
  --not-before DUR     valid only from now + DUR (default: now)
  --audience AUD       the aud claim (default: the config's auth.audience)
  --alg ALG            HS256, ES256 or RS256 when both kinds of key are configured
  --id JTI             the jti claim, which the daemon writes to its audit log (default: random)
  --format text|json   json prints {"token":…,"claims":…}
`;

export const TOKEN_FLAGS = {
  config: { type: 'string' },
  sub: { type: 'string' },
  access: { type: 'string', multiple: true },
  admin: { type: 'boolean' },
  ttl: { type: 'string' },
  'not-before': { type: 'string' },
  audience: { type: 'string' },
  alg: { type: 'string' },
  id: { type: 'string' },
  format: { type: 'string' },
} as const satisfies FlagOptions;

export const token: Command = {
  summary: 'Mint a bearer token for a daemon with auth on (operators)',
  help,
  flags: TOKEN_FLAGS,
  async run(args: string[]): Promise<number> {
    // Loaded only when run: the signing code is not needed for --help.
    const { runToken } = await import('./token-run.js');
    return runToken(args, help);
  },
};
