// Flag parsing shared by every command: strict, no positionals, --help/-h
// always accepted, and a bad flag is a one-line UsageError (exit 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './usage-error.js';

export type FlagOptions = NonNullable<ParseArgsConfig['options']>;
type Options = FlagOptions;
type WithHelp<T extends Options> = { args: string[]; options: T & { help: { type: 'boolean'; short: 'h' } }; strict: true; allowPositionals: false };

export function parseFlags<T extends Options>(args: string[], options: T): ReturnType<typeof parseArgs<WithHelp<T>>> {
  let parsed;
  try {
    parsed = parseArgs<WithHelp<T> & { tokens: true }>({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  // parseArgs keeps the last of a repeated value flag: `--max-age 1d --max-age 1000d` would
  // silently mean the second. A value flag not declared `multiple` may be given once.
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || options[t.name]?.type !== 'string' || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} given more than once`);
    seen.add(t.name);
  }
  const { tokens: _tokens, ...rest } = parsed;
  return rest as ReturnType<typeof parseArgs<WithHelp<T>>>;
}

/**
 * Flags of every command that talks to a daemon, named as buildctl names
 * them (--addr like buildctl's --addr, the TLS flags like its --tlscacert …).
 * They may also come before the command: `bkcache --addr X inspect …`.
 */
export const CLIENT_FLAGS = {
  addr: { type: 'string' },
  tlscacert: { type: 'string' },
  tlscert: { type: 'string' },
  tlskey: { type: 'string' },
  tlsservername: { type: 'string' },
} as const satisfies Options;

export const CLIENT_FLAGS_HELP = `  --addr ADDR           the daemon: unix:///path.sock or tcp://host:port (default $BKCACHE_ADDR;
                        without either, inspect and copy run in this process)
  --tlscacert FILE      CA certificate to verify the daemon's TLS certificate (tcp://)
  --tlscert FILE        client certificate for a daemon that asks for one (mTLS)
  --tlskey FILE         the client certificate's key
  --tlsservername NAME  the name to verify in the daemon's certificate (default: the host)
`;

/** Flags that may precede the command; each takes a value. */
const GLOBAL_VALUE_FLAGS = new Set([...Object.keys(CLIENT_FLAGS), 'format']);

/**
 * Splits `bkcache [global flags] command [flags]`. The global flags are
 * handed to the command in front of its own, so they mean the same wherever
 * they are written. Returns the command name undefined when there is none.
 */
export function splitGlobal(argv: string[]): { name?: string; rest: string[]; global: string[] } {
  const global: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('--') && argv[i] !== '--help' && argv[i] !== '--version') {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (!GLOBAL_VALUE_FLAGS.has(name)) throw new UsageError(`unknown global flag --${name} (global flags: ${[...GLOBAL_VALUE_FLAGS].map((f) => `--${f}`).join(', ')})`);
    if (eq >= 0) {
      global.push(arg);
      i++;
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      global.push(arg, argv[i + 1]!);
      i += 2;
    }
  }
  return { name: argv[i], rest: argv.slice(i + 1), global };
}

/**
 * A whole-number flag value: decimal digits only, from `min` to `max`. Not
 * Number(), which reads "" and "-0" as 0, "0x10" as 16 and "1e3" as 1000.
 */
export function parseCount(flag: string, v: string, min: number, max: number): number {
  const n = /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

/** The output format of a command: one vocabulary, json or text. */
export function parseFormat(v: string | undefined, extra: readonly string[] = []): 'json' | 'text' | (typeof extra)[number] {
  const f = v ?? 'text';
  if (f === 'json' || f === 'text' || extra.includes(f)) return f;
  throw new UsageError(`unknown --format ${f} (want ${['json', 'text', ...extra].join(' or ')})`);
}

/** What --format the command line asks for, read before parsing so even a usage error can be JSON. */
export function wantsJson(argv: string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--format' && argv[i + 1] === 'json') return true;
    if (argv[i] === '--format=json') return true;
  }
  return false;
}
