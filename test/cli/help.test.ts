// Every command's --help lists every flag it parses, and the command list
// names every command; the exit-code table is the one the README prints.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commands, usage } from '../../src/cli/commands.js';
import { EXIT, EXIT_CODES_HELP, exitCodeFor } from '../../src/cli/exit-codes.js';
import { splitGlobal } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { BkError } from '../../src/errors.js';

describe('help', () => {
  for (const [name, cmd] of Object.entries(commands)) {
    it(`${name} declares its flags and its help lists each one`, () => {
      expect(cmd.flags, `${name} has no flags declaration`).toBeDefined();
      for (const flag of Object.keys(cmd.flags!)) expect(cmd.help, `--${flag} missing from ${name} --help`).toMatch(new RegExp(`--${flag}\\b`));
    });
  }
  it('the command list names every command', () => {
    for (const name of Object.keys(commands)) expect(usage()).toMatch(new RegExp(`^  ${name} `, 'm'));
  });
});

describe('global flags', () => {
  it('come before the command and are handed to it', () => {
    expect(splitGlobal(['--addr', 'unix:///x', '--format=json', 'inspect', '--import-cache', 'a'])).toEqual({
      name: 'inspect',
      global: ['--addr', 'unix:///x', '--format=json'],
      rest: ['--import-cache', 'a'],
    });
    expect(() => splitGlobal(['--import-cache', 'a', 'inspect'])).toThrow(UsageError);
    expect(() => splitGlobal(['--addr'])).toThrow(/needs a value/);
  });
});

describe('exit codes', () => {
  it('one table: 0 ok, 1 failed, 2 usage or bad input, 3 not found, 4 denied', () => {
    expect(exitCodeFor(new UsageError('x'))).toBe(EXIT.USAGE);
    expect(exitCodeFor(new BkError('INVALID_ARGUMENT', 'x'))).toBe(2);
    expect(exitCodeFor(new BkError('NOT_FOUND', 'x'))).toBe(3);
    expect(exitCodeFor(new BkError('UNAUTHENTICATED', 'x'))).toBe(4);
    expect(exitCodeFor(new BkError('PERMISSION_DENIED', 'x'))).toBe(4);
    for (const c of ['UNAVAILABLE', 'DATA_LOSS', 'INTERNAL', 'FAILED_PRECONDITION'] as const) expect(exitCodeFor(new BkError(c, 'x'))).toBe(1);
  });
  it('README documents the same table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const line of EXIT_CODES_HELP.split('\n').slice(1).filter(Boolean)) {
      const [, code, meaning] = /^\s+(\d)\s+(.*)$/.exec(line)!;
      expect(readme).toContain(`| ${code} | ${meaning} |`);
    }
  });
});
