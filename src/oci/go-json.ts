// Byte-exact helpers for JSON as Go's encoding/json writes and reads it.
// BuildKit's configs and manifests are content-addressed, so re-encoding them
// must reproduce Go's bytes exactly: field order, omitempty, HTML-safe escaping
// and RFC 3339 times. https://pkg.go.dev/encoding/json#Marshal
import { BkError, invalidArgument } from '../errors.js';
import { GoFloat, goParse } from './go-json-parse.js';

export { GoFloat } from './go-json-parse.js';

// Characters that need no escaping under json.Marshal (escapeHTML on).
const SAFE = /^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e\u0080-\u2027\u202a-\ud7ff\ue000-\uffff]*$/;

const HEX = '0123456789abcdef';

/** Whether json.Marshal writes `s` as it is between its quotes (nothing to escape or replace). */
export function goStringIsPlain(s: string): boolean {
  return SAFE.test(s);
}

/** Encodes a string the way json.Marshal does (Go 1.21, as BuildKit v0.12 is built). */
export function goString(s: string): string {
  if (SAFE.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26) {
      out += '\\u00' + HEX[c >> 4] + HEX[c & 0xf];
    } else if (c === 0x2028 || c === 0x2029) {
      out += c === 0x2028 ? '\\u2028' : '\\u2029';
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
      } else {
        out += '\ufffd'; // Go replaces invalid UTF-8 (a lone surrogate) with U+FFFD
      }
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      out += '\ufffd';
    } else {
      out += s[i];
    }
  }
  return out + '"';
}

/** Go sorts map keys by their UTF-8 bytes. */
export function goSortedKeys(m: Record<string, string>): string[] {
  return Object.keys(m).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/** Encodes a map[string]string. */
export function goStringMap(m: Record<string, string>): string {
  const parts: string[] = [];
  for (const k of goSortedKeys(m)) parts.push(`${goString(k)}:${goString(m[k]!)}`);
  return `{${parts.join(',')}}`;
}

// ---- time.Time, RFC 3339 with nanoseconds --------------------------------------------------

export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

// Upper-case T and Z only: RFC 3339 allows "t" and "z", but Go's
// parseStrictRFC3339 (time.Time.UnmarshalJSON since Go 1.20) refuses them.
const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Parses a time as time.Time.UnmarshalJSON does and returns the text
 * MarshalJSON would write for it (RFC3339Nano: trailing zeros of the fraction
 * dropped, a zero offset written "Z"). Throws on text Go would reject.
 */
export function canonicalGoTime(s: string): string {
  const m = TIME_RE.exec(s);
  if (!m) throw invalidArgument(`invalid time ${JSON.stringify(s)}: not RFC 3339`, { reason: 'invalid-time' });
  const [, y, mo, d, h, mi, se, frac, z, sign, oh, om] = m;
  const year = +y!;
  const month = +mo!;
  if (month < 1 || month > 12 || +d! < 1 || +d! > daysIn(year, month) || +h! > 23 || +mi! > 59 || +se! > 59) {
    throw invalidArgument(`invalid time ${JSON.stringify(s)}: out of range`, { reason: 'invalid-time' });
  }
  if (!z && (+oh! > 23 || +om! > 59)) {
    throw invalidArgument(`invalid time ${JSON.stringify(s)}: bad offset`, { reason: 'invalid-time' });
  }
  // Go keeps nanosecond precision; extra digits are truncated.
  const nanos = (frac ?? '').slice(0, 9).replace(/0+$/, '');
  const offset = z || (+oh! === 0 && +om! === 0) ? 'Z' : `${sign}${oh}:${om}`;
  return `${y}-${mo}-${d}T${h}:${mi}:${se}${nanos ? '.' + nanos : ''}${offset}`;
}

// ---- decoding with Go's struct semantics -------------------------------------------------

/**
 * Looks a field up as Go's decoder does: an exact key match, else a
 * case-insensitive one; with several candidates, the last in the text wins.
 */
export function goField(obj: Record<string, unknown>, name: string): unknown {
  // Folded only if some key needs the comparison: most lookups meet the exact name and keys of other lengths.
  let folded: string | undefined;
  let found: unknown = undefined;
  for (const k in obj) if (k === name || (mayFold(k, name) && goFold(k) === (folded ??= goFold(name)))) found = obj[k];
  return found;
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * Whether key `k` can fold to `name` at all: an ASCII key only if it is as
 * long (folding ASCII maps each letter to one letter), any other always (ſ
 * and K fold to ASCII letters). Most keys of a document are other fields,
 * and folding every one for every lookup was most of decoding a manifest.
 */
function mayFold(k: string, name: string): boolean {
  return k.length === name.length || !ASCII.test(k);
}

/**
 * Go folds names by Unicode simple case folding (bytes.EqualFold), under
 * which two non-ASCII letters equal ASCII ones: U+017F (long s) is "s" and
 * U+212A (Kelvin) is "k". So "ſize" names the field size.
 */
function goFold(s: string): string {
  return s.replace(/\u017f/g, 's').replace(/\u212a/g, 'k').toLowerCase();
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoFloat);
}

/**
 * A short view of a decoded value for an error message. Never JSON.stringify
 * of an array or object: that recurses, and a document nested a million deep
 * (it parses: JSON.parse is iterative) would overflow the stack.
 */
function preview(v: unknown): string {
  if (v instanceof GoFloat) return `number ${v.text.slice(0, 40)}`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object' && v !== null) return 'an object';
  return (JSON.stringify(v) ?? String(v)).slice(0, 40);
}

// Every decoder below names what it decodes as `where` + `field` in its
// error, and joins the two only when it throws: a config of 20 000 records
// made hundreds of thousands of such names, each thrown away.

/** Decodes a Go `int` field: absent or null stays 0. */
export function goInt(v: unknown, where: string, field = ''): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (v === undefined || v === null) return 0;
  throw invalidArgument(`cannot decode ${preview(v)} into ${where}${field} of type int`, { reason: 'type-mismatch' });
}

/** Decodes a Go `string` field: absent or null stays "". */
export function goStr(v: unknown, where: string, field = ''): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  throw invalidArgument(`cannot decode ${preview(v)} into ${where}${field} of type string`, {
    reason: 'type-mismatch',
  });
}

/**
 * Decodes a Go []byte field: a base64 string as base64.StdEncoding reads it
 * (padding required, line breaks skipped, bits past the last byte ignored).
 * Returns the canonical base64 that json.Marshal writes back; "" for absent
 * or null. Buffer.from(s, 'base64') alone decodes a prefix of anything.
 */
export function goBytes(v: unknown, where: string, field = ''): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw invalidArgument(`cannot decode ${preview(v)} into ${where}${field} of type []byte`, { reason: 'type-mismatch' });
  const s = v.replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw invalidArgument(`${where}${field} is not base64 (illegal base64 data)`, { reason: 'malformed-base64' });
  }
  return Buffer.from(s, 'base64').toString('base64');
}

const NONE: readonly unknown[] = Object.freeze([]);

/** Decodes a Go slice: absent or null is an empty slice (a shared, frozen one: read it, never fill it). */
export function goArray(v: unknown, where: string, field = ''): readonly unknown[] {
  if (Array.isArray(v)) return v;
  if (v === undefined || v === null) return NONE;
  throw invalidArgument(`cannot decode a non-array into ${where}${field}`, { reason: 'type-mismatch' });
}

export function goObject(v: unknown, where: string, field = ''): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalidArgument(`cannot decode a non-object into ${where}${field}`, { reason: 'type-mismatch' });
  return v;
}

/** Decodes a time.Time: absent or null is the zero time. */
export function goTime(v: unknown, where: string, field = ''): string {
  if (v === undefined || v === null) return GO_ZERO_TIME;
  if (typeof v !== 'string') throw invalidArgument(`cannot decode ${where}${field}: time must be a string`, { reason: 'type-mismatch' });
  return canonicalGoTime(v);
}

/**
 * Decodes a Go map[string]string. A "__proto__" key is a key like any other
 * (Go keeps it; a plain assignment would have set the prototype and dropped it).
 */
export function goStringMapField(v: unknown, where: string, field = ''): Record<string, string> | undefined {
  const o = goObject(v, where, field);
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const k of Object.keys(o)) {
    const v = o[k];
    // A null value is "" to Go.
    const val = typeof v === 'string' ? v : goStr(v, `${where}${field}`, `[${k}]`);
    if (k === '__proto__') Object.defineProperty(out, k, { value: val, writable: true, enumerable: true, configurable: true });
    else out[k] = val;
  }
  return out;
}

/**
 * The JSON names of a Go struct's fields, to read an object's fields in one
 * pass over its keys, each matched as goField matches it (exact name, else
 * Go's case folding; the last match in the text wins, which is the last key
 * here: goParse moves a repeated key to the end). goField per field is a
 * pass per field: eight over every descriptor of a 10 000-layer manifest.
 */
export class GoStruct {
  private readonly exact = new Map<string, number>();
  private readonly folded = new Map<string, number>();
  private readonly lengths = new Set<number>();

  constructor(readonly names: readonly string[]) {
    names.forEach((n, i) => {
      this.exact.set(n, i);
      this.folded.set(goFold(n), i);
      this.lengths.add(n.length);
    });
  }

  /** Each field's raw value, in the order of `names`; undefined where absent. */
  read(obj: Record<string, unknown>): unknown[] {
    const out = new Array<unknown>(this.names.length).fill(undefined);
    for (const k in obj) {
      let i = this.exact.get(k);
      if (i === undefined) {
        if (!this.lengths.has(k.length) && ASCII.test(k)) continue;
        i = this.folded.get(goFold(k));
        if (i === undefined) continue;
      }
      out[i] = obj[k];
    }
    return out;
  }
}

/** Parses JSON bytes as encoding/json does (go-json-parse.ts), mapping syntax errors to a typed error. */
export function parseJsonBytes(data: Uint8Array | string, what: string): unknown {
  const text = typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  try {
    return goParse(text);
  } catch (err) {
    if (err instanceof BkError) throw err;
    throw invalidArgument(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err, reason: 'malformed-json' });
  }
}
