// A JSON parser that keeps what Go's encoding/json sees and JSON.parse loses.
// BuildKit decodes configs, manifests and indexes with encoding/json, so a
// document must decode here to what it decodes to there. JSON.parse differs
// in three ways an adversary can use:
// - A repeated key keeps its first position in a JS object but takes the
//   last value, so in {"size":1,"Size":2,"size":3} the case-insensitive
//   lookup (goField) saw "Size" last and read 2; Go assigns in text order
//   and reads 3. Here a repeated key moves to the end.
// - 1.0 and 1e3 are integers to JSON.parse; Go refuses them for an int field
//   (strconv.ParseInt of the literal). Here a number written with a fraction
//   or an exponent is a GoFloat, which goInt refuses.
// - "\ud800" (an escaped lone surrogate) stays a lone surrogate; Go decodes
//   it as U+FFFD, so two such keys are one key in Go.
// Go's scanner also refuses nesting deeper than 10000 levels.
// https://pkg.go.dev/encoding/json#Unmarshal (decode.go, scanner.go)

import { resourceExhausted } from '../errors.js';

/** A number literal with a fraction or an exponent: a float to Go, never an int. */
export class GoFloat {
  constructor(readonly text: string) {}
  get value(): number {
    return Number(this.text);
  }
}

/**
 * Objects and arrays per document. Each costs ~100 bytes of heap parsed and
 * decoded, and "{}," is 3 bytes of text: a 16 MiB config of 5.6 million empty
 * records took 10 s and 1.3 GB. Every document BuildKit imports (1 MiB at
 * most) has under 350 000, so this refuses nothing BuildKit could read.
 */
export const MAX_JSON_CONTAINERS = 1 << 20;

/** encoding/json's maxNestingDepth. */
export const GO_MAX_NESTING_DEPTH = 10000;

// A run of string characters that need no attention (a native scan is faster than a loop).
const PLAIN_RE = /[^"\\\x00-\x1f]*/y;
const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };

interface Frame {
  arr?: unknown[];
  obj?: Record<string, unknown>;
  key?: string;
}

/** Sets a key as Go assigns it: a repeated key replaces the value and counts as written last. */
function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (Object.hasOwn(obj, key)) delete obj[key];
  // "__proto__" is an ordinary key in JSON: never a prototype change.
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

/**
 * A flat copy of a string built from slices of the document (one with
 * escapes, so rare): JSON.parse makes its strings anew.
 */
function detached(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** Parses JSON text with Go's semantics (see the top of the file). Throws SyntaxError. */
export function goParse(text: string): unknown {
  const n = text.length;
  let i = 0;
  const fail = (msg: string): never => {
    throw new SyntaxError(`${msg} at offset ${i}`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  const hex4 = (at: number): number => {
    const h = text.slice(at, at + 4);
    return /^[0-9a-fA-F]{4}$/.test(h) ? parseInt(h, 16) : -1;
  };
  const readString = (): string => {
    if (text.charCodeAt(i) !== 0x22) fail('expected a string');
    i++;
    let out = '';
    let start = i;
    for (;;) {
      PLAIN_RE.lastIndex = i;
      PLAIN_RE.exec(text);
      i = PLAIN_RE.lastIndex;
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        // A string of its own, not a slice of the document: V8 makes a slice of
        // 13 or more characters a view into its parent, so every digest decoded
        // kept the whole document alive (a graph held its 4 MB config), and
        // comparing keys of two documents read both documents' text.
        if (out === '') return i - 1 - start < 13 ? text.slice(start, i - 1) : JSON.parse(text.slice(start - 1, i));
        return detached(out + text.slice(start, i - 1));
      }
      if (c < 0x20) fail('control character in string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text.charCodeAt(i + 1);
      if (e === 0x75) {
        let r = hex4(i + 2);
        if (r < 0) fail('invalid \\u escape');
        i += 6;
        if (r >= 0xd800 && r <= 0xdfff) {
          const lo = text.charCodeAt(i) === 0x5c && text.charCodeAt(i + 1) === 0x75 ? hex4(i + 2) : -1;
          if (r <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
            out += String.fromCharCode(r, lo);
            i += 6;
            r = -1;
          } else {
            r = 0xfffd; // Go: an unpaired surrogate decodes as the replacement character
          }
        }
        if (r >= 0) out += String.fromCharCode(r);
      } else {
        const s = ESCAPES[e];
        if (s === undefined) fail('invalid escape');
        out += s;
        i += 2;
      }
      start = i;
    }
  };
  const readKey = (): string => {
    const key = readString();
    ws();
    if (text.charCodeAt(i) !== 0x3a) fail("expected ':'");
    i++;
    return key;
  };

  const stack: Frame[] = [];
  let containers = 0;
  let value: unknown;
  outer: for (;;) {
    ws();
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= GO_MAX_NESTING_DEPTH) fail(`exceeded max depth of ${GO_MAX_NESTING_DEPTH}`);
      if (++containers > MAX_JSON_CONTAINERS) {
        throw resourceExhausted(`more than ${MAX_JSON_CONTAINERS} objects and arrays in one document`, { reason: 'too-large' });
      }
      i++;
      ws();
      if (c === 0x7b) {
        const obj: Record<string, unknown> = {};
        if (text.charCodeAt(i) === 0x7d) {
          i++;
          value = obj;
        } else {
          stack.push({ obj, key: readKey() });
          continue;
        }
      } else {
        const arr: unknown[] = [];
        if (text.charCodeAt(i) === 0x5d) {
          i++;
          value = arr;
        } else {
          stack.push({ arr });
          continue;
        }
      }
    } else if (c === 0x22) {
      value = readString();
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(text);
      if (!m) fail('invalid number');
      i += m![0].length;
      value = m![1] !== undefined || m![2] !== undefined ? new GoFloat(m![0]) : Number(m![0]);
    } else if (text.startsWith('true', i)) {
      i += 4;
      value = true;
    } else if (text.startsWith('false', i)) {
      i += 5;
      value = false;
    } else if (text.startsWith('null', i)) {
      i += 4;
      value = null;
    } else {
      fail(i >= n ? 'unexpected end of input' : 'invalid character');
    }
    // Hand the value to its container; close every container that ends here.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) break outer;
      if (top.arr) top.arr.push(value);
      else setKey(top.obj!, top.key!, value);
      ws();
      const d = text.charCodeAt(i);
      i++;
      if (d === 0x2c) {
        if (top.obj) {
          ws();
          top.key = readKey();
        }
        continue outer;
      }
      if (d !== (top.arr ? 0x5d : 0x7d)) {
        i--;
        fail(top.arr ? "expected ',' or ']'" : "expected ',' or '}'");
      }
      value = top.arr ?? top.obj;
      stack.pop();
    }
  }
  ws();
  if (i < n) fail('invalid character after top-level value');
  return value;
}
