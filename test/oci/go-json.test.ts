import { describe, expect, it } from 'vitest';
import { canonicalGoTime, goField, goInt, goStr, goString, goStringMap, GO_ZERO_TIME } from '../../src/oci/go-json.js';

describe('goString', () => {
  it('escapes like encoding/json with HTML escaping on', () => {
    expect(goString('a<b>&c')).toBe('"a\\u003cb\\u003e\\u0026c"');
    expect(goString('q"\\')).toBe('"q\\"\\\\"');
    expect(goString('\n\r\t')).toBe('"\\n\\r\\t"');
    expect(goString('\u0001\u0008\u000c\u001f')).toBe('"\\u0001\\u0008\\u000c\\u001f"');
    expect(goString('\u2028\u2029')).toBe('"\\u2028\\u2029"');
    expect(goString('\u007f é 日本 😀')).toBe('"\u007f é 日本 😀"');
  });
  it('replaces lone surrogates as Go replaces invalid UTF-8', () => {
    expect(goString('a\ud800b')).toBe('"a\ufffdb"');
    expect(goString('\udc00')).toBe('"\ufffd"');
  });
  it('matches JSON.stringify on safe strings', () => {
    for (const s of ['sha256:abc', 'busybox ls -la /', '']) expect(goString(s)).toBe(JSON.stringify(s));
  });
});

describe('goStringMap', () => {
  it('sorts keys by UTF-8 bytes', () => {
    expect(goStringMap({ b: '1', a: '2', 'containerd.io/uncompressed': 'x', 'buildkit/createdat': 'y' })).toBe(
      '{"a":"2","b":"1","buildkit/createdat":"y","containerd.io/uncompressed":"x"}',
    );
    // UTF-16 order would put U+1F600 (a surrogate pair) first; UTF-8 bytes put U+FF61 first.
    expect(goStringMap({ '\u{1f600}': '1', '\uff61': '2' })).toBe('{"\uff61":"2","\u{1f600}":"1"}');
  });
});

describe('canonicalGoTime', () => {
  it('writes RFC3339Nano as Go does', () => {
    expect(canonicalGoTime('2026-11-22T09:42:52.378349711Z')).toBe('2026-11-22T09:42:52.378349711Z');
    expect(canonicalGoTime('2026-11-22T09:42:52.500000000Z')).toBe('2026-11-22T09:42:52.5Z');
    expect(canonicalGoTime('2026-11-22T09:42:52.000Z')).toBe('2026-11-22T09:42:52Z');
    expect(canonicalGoTime('2026-11-22T09:42:52+00:00')).toBe('2026-11-22T09:42:52Z');
    expect(canonicalGoTime('2026-11-22T09:42:52.1+02:30')).toBe('2026-11-22T09:42:52.1+02:30');
    expect(canonicalGoTime('2026-11-22T09:42:52.1234567891Z')).toBe('2026-11-22T09:42:52.123456789Z');
    expect(canonicalGoTime(GO_ZERO_TIME)).toBe('0001-01-01T00:00:00Z');
  });
  it('rejects what time.Parse rejects', () => {
    for (const bad of ['2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-11-22 09:42:52Z', '2026-11-22T25:00:00Z', 'yesterday']) {
      expect(() => canonicalGoTime(bad)).toThrow(/invalid time/);
    }
    expect(canonicalGoTime('2024-02-29T00:00:00Z')).toBe('2024-02-29T00:00:00Z');
  });
});

describe('decoding with Go semantics', () => {
  it('matches field names case-insensitively, last one wins', () => {
    expect(goField({ Digest: 'a' }, 'digest')).toBe('a');
    expect(goField({ digest: 'a', DIGEST: 'b' }, 'digest')).toBe('b');
    expect(goField({ other: 1 }, 'digest')).toBeUndefined();
  });
  it('treats absent and null ints as 0 and rejects non-integers', () => {
    expect(goInt(undefined, 'x')).toBe(0);
    expect(goInt(null, 'x')).toBe(0);
    expect(() => goInt(1.5, 'x')).toThrow(/type int/);
    expect(() => goInt('1', 'x')).toThrow(/type int/);
  });
});

describe('decoding errors on deeply nested input', () => {
  it('describe the value without recursing into it (a million-deep array parses, but must not be stringified)', () => {
    const deep = JSON.parse('['.repeat(1e6) + ']'.repeat(1e6)) as unknown;
    expect(() => goInt(deep, 'size')).toThrow('cannot decode an array into size of type int');
    expect(() => goStr({ a: deep }, 'digest')).toThrow('cannot decode an object into digest of type string');
  });
});
