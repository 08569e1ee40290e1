import { describe, expect, it } from 'vitest';
import { printable } from '../src/printable.js';
import { errorLine } from '../src/cli/run.js';
import { BkError } from '../src/errors.js';

describe('printable', () => {
  it('shows control characters, separators, bidi overrides and lone surrogates as \\uXXXX; keeps other text', () => {
    expect(printable('a\u0000b\tc\nd\re\u001b[1m\u007f\u0085\u2028\u2029\u202e\u200b\ud800f')).toBe(
      'a\\u0000b\\u0009c\\u000ad\\u000de\\u001b[1m\\u007f\\u0085\\u2028\\u2029\\u202e\\u200b\\ud800f',
    );
    expect(printable('RUN apk add café 👍 "quoted" \\ <b>')).toBe('RUN apk add café 👍 "quoted" \\ <b>');
  });

  it('cuts long text with …, never inside a character or an escape', () => {
    expect(printable('x'.repeat(1_000_000))).toBe('x'.repeat(200) + '…');
    expect(printable('x'.repeat(198) + '👍👍', 200)).toBe('x'.repeat(198) + '👍…');
    expect(printable('x'.repeat(198) + '👍', 200)).toBe('x'.repeat(198) + '👍');
    expect(printable('x'.repeat(199) + '👍', 200)).toBe('x'.repeat(199) + '…');
    expect(printable('x'.repeat(195) + '\u001b', 200)).toBe('x'.repeat(195) + '…');
  });

  it('an error message quoting a registry reaches the terminal as one visible line', () => {
    const line = errorLine(new BkError('UNAVAILABLE', 'GET blob: HTTP 500 (UNKNOWN: \u001b]0;owned\u0007\u001b[2Jgone\u2028forged)'));
    expect(line).toBe('bkcache: error: GET blob: HTTP 500 (UNKNOWN: \\u001b]0;owned\\u0007\\u001b[2Jgone\\u2028forged) [UNAVAILABLE]');
  });
});
