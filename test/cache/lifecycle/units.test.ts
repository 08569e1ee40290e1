import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from '../../../src/cache/lifecycle/units.js';

describe('durations and sizes', () => {
  it('parses durations with Go units plus days and weeks', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
  });

  it('refuses what is not a duration', () => {
    for (const bad of ['', '10', 'd', '1y', '1h 30m', '-1h', '1h30']) expect(() => parseDuration(bad), bad).toThrow(/invalid duration/);
  });

  it('refuses durations past exact milliseconds instead of taking a huge value', () => {
    // 300 nines of days is finite as a double, and was taken as a cutoff 1e300 ms ago.
    for (const bad of [`${'9'.repeat(300)}d`, `${'9'.repeat(16)}ms`, '300000000y', `${'1'.repeat(16)}w`]) {
      expect(() => parseDuration(bad), bad).toThrow(/duration/);
    }
    expect(parseDuration(`${Number.MAX_SAFE_INTEGER}ms`)).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseDuration('100000w')).toBe(100_000 * 7 * 86_400_000);
  });

  it('quotes a hostile value in one short line', () => {
    for (const [parse, v] of [
      [parseDuration, `${'\n\x1b[31m'.repeat(1000)}d`],
      [parseSize, `1\n${'G'.repeat(100_000)}`],
    ] as const) {
      let message = '';
      try {
        parse(v);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toMatch(/[\n\x1b]/);
      expect(message.length).toBeLessThan(200);
    }
  });

  it('parses sizes in SI and IEC units', () => {
    expect(parseSize('1024')).toBe(1024);
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('20GiB')).toBe(20 * 1024 ** 3);
    expect(parseSize('1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('2 kib')).toBe(2048);
    expect(parseSize('7b')).toBe(7);
  });

  it('refuses what is not a size', () => {
    for (const bad of ['', 'GB', '-1GB', '1XB', '1e3', `${'9'.repeat(30)}TB`]) expect(() => parseSize(bad), bad).toThrow(/size/);
  });
});
