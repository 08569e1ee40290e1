import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { decodeCacheConfig } from '../../src/cache/config.js';
import { decodeDescriptor, encodeDescriptor } from '../../src/oci/descriptor.js';
import {
  canonicalGoTime,
  goField,
  GoFloat,
  goInt,
  goObject,
  goStr,
  goString,
  goStringMap,
  GoStruct,
  GO_ZERO_TIME,
  parseJsonBytes,
} from '../../src/oci/go-json.js';
import { MAX_JSON_CONTAINERS } from '../../src/oci/go-json-parse.js';

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
    const lowerCase = ['2026-11-22t09:42:52Z', '2026-11-22T09:42:52z', '2026-11-22t09:42:52.5z'];
    const odd = ['2026-11-22T09:42:52,5Z', '2026-11-22T09:42:52.Z', '2026-11-22T09:42:60Z', '2026-11-22T09:42:52+24:00', '+2026-11-22T09:42:52Z'];
    for (const bad of ['2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-11-22 09:42:52Z', '2026-11-22T25:00:00Z', 'yesterday', ...lowerCase, ...odd]) {
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

describe('parseJsonBytes decodes what encoding/json decodes', () => {
  it('a repeated key counts as written last: {"size":1,"Size":2,"size":3} has size 3, as in Go', () => {
    const doc = parseJsonBytes('{"size":1,"Size":2,"size":3}', 'x') as Record<string, unknown>;
    expect(goField(doc, 'size')).toBe(3);
    const desc = decodeDescriptor(
      parseJsonBytes(`{"digest":"sha256:${'a'.repeat(64)}","size":1,"Size":2,"size":3}`, 'x'),
    );
    expect(desc.size).toBe(3);
  });
  it('folds field names as bytes.EqualFold does: U+017F is "s", U+212A is "k"', () => {
    expect(goField(parseJsonBytes('{"size":1,"\u017fize":5}', 'x') as Record<string, unknown>, 'size')).toBe(5);
    expect(goField({ \u212aey: 2 }, 'key')).toBe(2);
  });
  it('refuses 1.0, 1e3 and -0.0 for an int, as strconv.ParseInt does', () => {
    for (const n of ['1.0', '1e3', '1E0', '-0.0', '2.5e1']) {
      const doc = parseJsonBytes(`{"size":${n}}`, 'x') as Record<string, unknown>;
      expect(() => goInt(goField(doc, 'size'), 'size')).toThrow(`cannot decode number ${n} into size of type int`);
    }
    expect(goInt(goField(parseJsonBytes('{"size":-0}', 'x') as Record<string, unknown>, 'size'), 'size')).toBe(-0);
    expect(() => decodeDescriptor(parseJsonBytes(`{"digest":"sha256:${'a'.repeat(64)}","size":12.0}`, 'x'))).toThrow(BkError);
    // A float is no object either (Go: cannot unmarshal number into a struct).
    expect(() => goObject(parseJsonBytes('1.5', 'x'), 'platform')).toThrow(/non-object/);
  });
  it('decodes an escaped lone surrogate as U+FFFD, so two of them are one key', () => {
    const doc = parseJsonBytes('{"a\\ud800":"x","a\\udc00":"y","p":"\\ud83d\\ude00\\ud800\\u0041"}', 'x') as Record<string, string>;
    expect(Object.keys(doc)).toEqual(['a\ufffd', 'p']);
    expect(doc['a\ufffd']).toBe('y');
    expect(doc.p).toBe('\u{1f600}\ufffdA');
  });
  it('decodes strings of every length, with and without escapes, to what JSON.parse makes of them', () => {
    const pieces = ['a', 'é', '\\u00e9', '\\n', '\\"', '\\\\', '\\ud83d\\ude00', '€', 'sha256:'];
    for (let len = 0; len < 40; len++) {
      for (let p = 0; p < pieces.length; p++) {
        const body = Array.from({ length: len }, (_, k) => (k % 7 === 3 ? pieces[(p + k) % pieces.length] : 'x')).join('');
        const json = `{"k":"${body}","a":["${body}${body}"]}`;
        expect(parseJsonBytes(Buffer.from(json), 'test'), json).toEqual(JSON.parse(json));
      }
    }
  });

  it('keeps "__proto__" an ordinary key', () => {
    const doc = parseJsonBytes('{"__proto__":{"polluted":1},"a":1}', 'x') as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype);
    expect((doc as { polluted?: number }).polluted).toBeUndefined();
  });
  it('refuses nesting deeper than Go\'s 10000 levels with a typed error, and takes 10000', () => {
    expect(parseJsonBytes('['.repeat(10000) + ']'.repeat(10000), 'x')).toBeInstanceOf(Array);
    const deep = () => parseJsonBytes('['.repeat(1e6) + ']'.repeat(1e6), 'deep');
    expect(deep).toThrow(BkError);
    expect(deep).toThrow(/exceeded max depth/);
    expect(() => parseJsonBytes('{"a":'.repeat(10001) + '1' + '}'.repeat(10001), 'x')).toThrow(/exceeded max depth/);
  });
  it('refuses what Go\'s scanner refuses, with a typed error', () => {
    for (const bad of ['', ' ', '\ufeff{}', '{}x', '{} {}', '{"a":1,}', '[1,]', '{"a" 1}', "{'a':1}", '01', '1.', '.5', '+1', '"\\x"', '"\\u12"', '"a\tb"', 'nul', 'NaN', '[', '{"a":', '"abc']) {
      expect(() => parseJsonBytes(bad, 'doc'), JSON.stringify(bad)).toThrow(BkError);
    }
    // and takes what it takes, with JSON.parse's values
    for (const ok of [' {"a" : [1, -2, "x\\/y\\n", true, false, null, {}, []]}\r\n', '"\\u00e9\\b\\f"', '0', '-12', '[1.5e-3]']) {
      expect(JSON.parse(JSON.stringify(parseJsonBytes(ok, 'doc'), (_k, v: unknown) => (v instanceof GoFloat ? v.value : v)))).toEqual(JSON.parse(ok));
    }
  });
});

describe('parseJsonBytes bounds the objects and arrays of one document', () => {
  it(`refuses more than ${MAX_JSON_CONTAINERS} with RESOURCE_EXHAUSTED (a 16 MiB config of 5.6 million "{}" took 10 s and 1.3 GB)`, () => {
    const over = '{"records":[' + '{},'.repeat(MAX_JSON_CONTAINERS - 1) + '{}]}';
    let err: unknown;
    try {
      parseJsonBytes(over, 'cache config');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('RESOURCE_EXHAUSTED');
    const at = '[' + '[],'.repeat(MAX_JSON_CONTAINERS - 2) + '[]]';
    expect((parseJsonBytes(at, 'x') as unknown[]).length).toBe(MAX_JSON_CONTAINERS - 1);
  });
});

describe('GoStruct reads each field as goField does, in one pass', () => {
  // Keys chosen to collide: exact names, case variants, ſ (folds to s) and K (Kelvin, folds to k), other fields.
  const NAMES = ['size', 'digest', 'mediaType', 'os.version', 'k'];
  const VARIANTS = ['size', 'Size', 'SIZE', 'ſize', 'digest', 'Digest', 'DIGEſT', 'mediaType', 'mediatype', 'MediaType', 'os.version', 'OS.Version', 'k', 'K', 'K', 'sizes', 'dig', '', '__proto__', 'x'];
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  it('on 500 random documents with repeated and folded keys, parsed as Go reads them', () => {
    const struct = new GoStruct(NAMES);
    for (let t = 0; t < 500; t++) {
      const pairs = Array.from({ length: rnd(9) }, (_, i) => `${JSON.stringify(VARIANTS[rnd(VARIANTS.length)])}:${i}`);
      const doc = parseJsonBytes(`{${pairs.join(',')}}`, 'doc') as Record<string, unknown>;
      expect(struct.read(doc), pairs.join(',')).toEqual(NAMES.map((n) => goField(doc, n)));
    }
  });
});

describe('decoders name the field of a bad value', () => {
  it('in a descriptor, an index and a cache config', () => {
    expect(() => decodeDescriptor({ digest: `sha256:${'a'.repeat(64)}`, size: 'x' }, 'manifests[3]')).toThrow(
      'cannot decode "x" into manifests[3].size of type int',
    );
    expect(() => decodeDescriptor({ digest: `sha256:${'a'.repeat(64)}`, size: 1, annotations: { a: 1 } }, 'layers[0]')).toThrow(
      'cannot decode 1 into layers[0].annotations[a] of type string',
    );
    expect(() => decodeCacheConfig('{"records":[{},{"inputs":[[{"selector":7}]]}]}')).toThrow('cannot decode 7 into records[1].inputs[0][0].selector of type string');
    expect(() => decodeCacheConfig('{"layers":[{"blob":"b","parent":"p"}]}')).toThrow('cannot decode "p" into layers[0].parent of type int');
  });
  it('keep a "__proto__" annotation key as Go keeps a map key, and read null values as ""', () => {
    const d = decodeDescriptor(parseJsonBytes(`{"digest":"sha256:${'a'.repeat(64)}","size":1,"annotations":{"__proto__":"v","n":null}}`, 'd'));
    expect(Object.keys(d.annotations!)).toEqual(['__proto__', 'n']);
    expect(d.annotations!['__proto__']).toBe('v');
    expect(d.annotations!['n']).toBe('');
    expect(Object.getPrototypeOf(d.annotations)).toBe(Object.prototype);
    expect(encodeDescriptor(d)).toContain('"annotations":{"__proto__":"v","n":""}');
  });
});
