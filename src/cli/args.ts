// Flag parsing shared by every command: strict, no positionals, --help/-h
// always accepted, and a bad flag is a one-line UsageError (exit 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './usage-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type WithHelp<T extends Options> = { args: string[]; options: T & { help: { type: 'boolean'; short: 'h' } }; strict: true; allowPositionals: false };

export function parseFlags<T extends Options>(args: string[], options: T): ReturnType<typeof parseArgs<WithHelp<T>>> {
  try {
    return parseArgs<WithHelp<T>>({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
}
