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
