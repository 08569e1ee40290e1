import { describe, expect, it } from 'vitest';
import { prefixKeys } from '../../src/cache/sort-keys.js';
import { rng } from '../../integration/harness/rng.js';

/** Every pair: a smaller key means a smaller string, and equal strings have equal keys. */
function expectConsistent(strs: string[]): Float64Array {
  const keys = prefixKeys(strs.length, (i) => strs[i]!);
  for (let i = 0; i < strs.length; i++) {
    expect(Number.isSafeInteger(keys[i]!), `key of ${JSON.stringify(strs[i])}`).toBe(true);
    for (let j = 0; j < strs.length; j++) {
      if (keys[i]! < keys[j]!) expect(strs[i]! < strs[j]!, `${JSON.stringify(strs[i])} < ${JSON.stringify(strs[j])}`).toBe(true);
      if (strs[i] === strs[j]) expect(keys[i]).toBe(keys[j]);
    }
  }
  return keys;
}

describe('prefixKeys', () => {
  it('orders strings as JavaScript does, whatever their code units and lengths', () => {
    const r = rng(3);
    const alphabets = ['0123456789abcdef', 'ab', 'aé€\u{1F600}z\u0000', '\uffff\u0001x'];
    for (let round = 0; round < 40; round++) {
      const alphabet = [...alphabets[round % alphabets.length]!];
      const prefix = round % 3 === 0 ? 'sha256:' : '';
      const strs = Array.from({ length: 30 }, () => prefix + Array.from({ length: Math.floor(r() * 12) }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''));
      expectConsistent(strs);
    }
    // Shared prefixes of every length around the 16 code units copied per string (longer ones read the strings).
    for (let shared = 0; shared <= 24; shared += 3) {
      const alphabet = [...alphabets[shared % alphabets.length]!];
      const prefix = 'p'.repeat(shared);
      const strs = Array.from({ length: 30 }, () => prefix + Array.from({ length: Math.floor(r() * 20) }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''));
      expectConsistent(strs);
    }
    expectConsistent([]);
    expectConsistent(['']);
    expectConsistent(['', 'a', 'ab', 'a', '']);
  });

  it('tells 20 000 random digests apart by key alone, but for a handful', () => {
    const r = rng(5);
    const hex = '0123456789abcdef';
    const strs = Array.from({ length: 20_000 }, () => 'sha256:' + Array.from({ length: 64 }, () => hex[Math.floor(r() * 16)]).join(''));
    const keys = prefixKeys(strs.length, (i) => strs[i]!);
    const order = strs.map((_, i) => i).sort((i, j) => keys[i]! - keys[j]! || (strs[i]! < strs[j]! ? -1 : 1));
    expect(order.map((i) => strs[i])).toEqual([...strs].sort());
    // 16^7 keys for 20 000 digests: about 20 000^2 / (2 * 16^7), under one, pairs share a key.
    expect(new Set(keys).size).toBeGreaterThanOrEqual(strs.length - 5);
  });
});
