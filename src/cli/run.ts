// bkcache command line. Thin: parse flags, call the core, print, and map
// errors to one-line messages (or JSON with --format json) and exit codes
// here, in one place. Modules a command needs (gRPC, HTTP, the cache core)
// are loaded by that command only, so `bkcache --help` starts as fast as node.
import { asBkError } from '../errors.js';
import { printable } from '../printable.js';
import { splitGlobal, wantsJson } from './args.js';
import { commands, usage } from './commands.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { didYouMean } from '../suggest.js';
import { UsageError } from './usage-error.js';

export { exitCodeFor } from './exit-codes.js';

/** The error as one line for a terminal: messages quote registries and caches, so escapes and separators are shown, not acted on. */
export function errorLine(err: unknown): string {
  if (err instanceof UsageError) return `bkcache: ${printable(err.message, 2000)} (see bkcache ${err.command ? `${err.command} ` : ''}--help)`;
  const e = asBkError(err);
  return `bkcache: error: ${printable(e.message.split('\n')[0]!, 2000)} [${e.code}]`;
}

/** The error as one JSON object, for --format json: {"error":{"code","reason","message","exitCode"}}. */
export function errorJson(err: unknown): string {
  const exitCode = exitCodeFor(err);
  if (err instanceof UsageError) return JSON.stringify({ error: { code: 'USAGE', message: err.message, exitCode } });
  const e = asBkError(err);
  return JSON.stringify({ error: { code: e.code, ...(e.reason ? { reason: e.reason } : {}), message: e.message.split('\n')[0], exitCode } });
}

export async function main(argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  let name: string | undefined;
  try {
    const split = splitGlobal(argv);
    name = split.name;
    if (name === undefined) {
      process.stderr.write(usage());
      return EXIT.USAGE;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      const topic = split.rest[0];
      if (topic === undefined) process.stdout.write(usage());
      else {
        const cmd = commands[topic];
        if (!cmd) throw unknownCommand(topic);
        process.stdout.write(cmd.help);
      }
      return EXIT.OK;
    }
    if (name === '--version' || name === '-v') name = 'version';
    const cmd = commands[name];
    if (!cmd) throw unknownCommand(name);
    return await cmd.run([...split.global, ...split.rest]);
  } catch (err) {
    if (err instanceof UsageError && !err.command && name && commands[name]) {
      err = new UsageError(err.message, name);
    }
    process.stderr.write((json ? errorJson(err) : errorLine(err)) + '\n');
    if (process.env.BKCACHE_DEBUG) console.error(err);
    return exitCodeFor(err);
  }
}

function unknownCommand(name: string): UsageError {
  return new UsageError(`unknown command ${JSON.stringify(name)}${didYouMean(name, Object.keys(commands))}`);
}
