// bkcache command line. Thin: parse flags, call the core, print, and map
// errors to one-line messages and exit codes here, in one place.
import { asBkError } from '../errors.js';
import { commands, usage } from './commands.js';
import { UsageError } from './usage-error.js';

/** Exit codes: 0 ok, 1 operation failed, 2 bad usage or bad input. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return 2;
  const e = asBkError(err);
  return e.code === 'INVALID_ARGUMENT' ? 2 : 1;
}

export function errorLine(err: unknown): string {
  if (err instanceof UsageError) return `bkcache: ${err.message} (see bkcache --help)`;
  const e = asBkError(err);
  return `bkcache: error: ${e.message.split('\n')[0]} [${e.code}]`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    process.stdout.write('bkcache 0.1.0\n');
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(errorLine(new UsageError(`unknown command ${JSON.stringify(name)}`)) + '\n');
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    process.stderr.write(errorLine(err) + '\n');
    if (process.env.BKCACHE_DEBUG) console.error(err);
    return exitCodeFor(err);
  }
}

