import { describe, expect, it } from 'vitest';
import { parseCount, parseFlags } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { lifecycleCommands } from '../../src/cli/lifecycle.js';

const FLAGS = { 'max-age': { type: 'string' }, keep: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean' } } as const;

describe('parseFlags', () => {
  it('a value flag given twice is a usage error, not the last one silently', () => {
    for (const args of [
      ['--max-age', '1d', '--max-age', '1000d'],
      ['--max-age=1d', '--max-age', '1d'],
      ['--max-age', '', '--max-age=2d'],
    ]) {
      expect(() => parseFlags(args, FLAGS), args.join(' ')).toThrow(UsageError);
      expect(() => parseFlags(args, FLAGS)).toThrow('--max-age given more than once');
    }
  });

  it('repeatable flags repeat, and the values come back as before', () => {
    const { values } = parseFlags(['--keep', 'a', '--keep=b', '--max-age', '1d', '--dry-run'], FLAGS);
    expect(values).toEqual({ keep: ['a', 'b'], 'max-age': '1d', 'dry-run': true });
  });

  it('lifecycle commands refuse a repeated --max-age, --older-than or --max-size before touching any cache', async () => {
    const cases: [string, string[]][] = [
      ['trim', ['--import-cache', 'type=local,src=/nonexistent', '--dry-run', '--max-age', '1d', '--max-age', '9999d']],
      ['trim', ['--import-cache', 'type=local,src=/nonexistent', '--dry-run', '--max-size', '1G', '--max-size', '0']],
      ['gc', ['--repository', 'type=local,src=/nonexistent', '--older-than', '1d', '--older-than', '1w']],
    ];
    for (const [cmd, args] of cases) await expect(lifecycleCommands[cmd]!.run(args), `${cmd} ${args.join(' ')}`).rejects.toThrow(/given more than once/);
  });

  it('whole-number flags take decimal digits only, within their range', () => {
    expect(parseCount('top', '0', 0, 10)).toBe(0);
    expect(parseCount('top', '10', 0, 10)).toBe(10);
    expect(parseCount('top', '007', 0, 10)).toBe(7);
    // Number() read these as 0, 0, 16, 1000, 1, 5 and 0.
    for (const bad of ['', ' ', '0x10', '1e3', '1.0', '+5', '-0', '11', 'Infinity', '9'.repeat(400)]) {
      expect(() => parseCount('top', bad, 0, 10), JSON.stringify(bad)).toThrow('--top must be a whole number from 0 to 10');
    }
  });

  it('du --top and verify --concurrency refuse what is not a plain whole number, before opening anything', async () => {
    await expect(lifecycleCommands.du!.run(['--import-cache', 'type=local,src=/nonexistent', '--top', ''])).rejects.toThrow(UsageError);
    await expect(lifecycleCommands.du!.run(['--import-cache', 'type=local,src=/nonexistent', '--top=0x10'])).rejects.toThrow(UsageError);
    await expect(lifecycleCommands.verify!.run(['--import-cache', 'type=local,src=/nonexistent', '--concurrency', '1e2'])).rejects.toThrow(UsageError);
  });
});
