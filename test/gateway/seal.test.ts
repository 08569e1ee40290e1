import { describe, expect, it } from 'vitest';
import { MAX_SEALED_CHARS, Sealer } from '../../src/gateway/seal.js';

const s = new Sealer(Buffer.alloc(32, 1));

describe('Sealer', () => {
  it('round-trips a value, differently each time', () => {
    const a = s.seal('upload', { repo: 'r', off: 3 });
    expect(s.open('upload', a)).toEqual({ repo: 'r', off: 3 });
    expect(s.seal('upload', { repo: 'r', off: 3 })).not.toBe(a);
    expect(a).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('opens nothing altered, truncated, foreign, oversized or sealed for another purpose', () => {
    const a = s.seal('upload', { repo: 'r' });
    for (let i = 0; i < a.length; i += 7) {
      const c = a[i] === 'A' ? 'B' : 'A';
      expect(s.open('upload', a.slice(0, i) + c + a.slice(i + 1))).toBeUndefined();
    }
    expect(s.open('upload', a.slice(0, -1))).toBeUndefined();
    expect(s.open('token', a)).toBeUndefined();
    expect(new Sealer(Buffer.alloc(32, 2)).open('upload', a)).toBeUndefined();
    expect(s.open('upload', 'A'.repeat(MAX_SEALED_CHARS + 1))).toBeUndefined();
    expect(s.open('upload', 'not/base64')).toBeUndefined();
    expect(s.open('upload', '')).toBeUndefined();
  });

  it('wants a secret of at least 32 bytes', () => {
    expect(() => new Sealer(Buffer.alloc(31))).toThrow();
  });
});
