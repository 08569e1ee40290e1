import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { isDigest, parseDigest } from '../../src/oci/digest.js';

const hex = (n: number, c = 'a') => c.repeat(n);

describe('isDigest / parseDigest (the one strict digest parser)', () => {
  it('accepts the registered algorithms with their exact lowercase hex length', () => {
    for (const d of [`sha256:${hex(64)}`, `sha512:${hex(128, '0')}`, `blake3:${hex(64, 'f')}`]) {
      expect(isDigest(d), d).toBe(true);
    }
    expect(parseDigest(`sha512:${hex(128, 'b')}`)).toEqual({ algorithm: 'sha512', hex: hex(128, 'b') });
  });

  it('refuses everything else, with a typed invalid-digest error', () => {
    const bad: unknown[] = [
      `sha256:${hex(63)}`,
      `sha256:${hex(65)}`,
      `sha256:${hex(64, 'A')}`,
      `sha512:${hex(64)}`,
      `md5:${hex(32)}`,
      `SHA256:${hex(64)}`,
      `sha256:${hex(63)}g`,
      `sha256:${hex(64)}\n`,
      ` sha256:${hex(64)}`,
      `sha256+b64u:${hex(64)}`,
      `sha256`,
      '',
      undefined,
      42,
    ];
    for (const d of bad) {
      expect(isDigest(d), JSON.stringify(d)).toBe(false);
      expect(() => parseDigest(d)).toThrow(BkError);
      expect(() => parseDigest(d)).toThrow(expect.objectContaining({ reason: 'invalid-digest' }));
    }
  });
});
