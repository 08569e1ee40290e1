// Cache specs in buildctl's attribute syntax: "type=registry,ref=host/repo:tag".
// buildctl reads a spec as one CSV record of key=value fields with Go's
// encoding/csv rules (https://pkg.go.dev/encoding/csv), so a field that holds
// a comma is quoted whole ("dest=a,b" in quotes), `""` inside quotes is a
// quote, and a quote anywhere else is an error (csv.ErrBareQuote,
// csv.ErrQuote). The same rules here mean a spec the daemon authorizes is
// the spec buildctl would read, character for character.
import { invalidArgument } from '../errors.js';

export interface CacheSpec {
  type: string;
  attrs: Record<string, string>;
}

/** Longer than any real spec (buildctl's attributes, a path, a reference) by far; bounds what is parsed and echoed. */
const MAX_SPEC_CHARS = 16 << 10;

function bad(s: string, why: string) {
  const shown = s.length > 120 ? `${s.slice(0, 120)}…` : s;
  return invalidArgument(`invalid cache spec ${JSON.stringify(shown)}: ${why}`, { reason: 'invalid-spec' });
}

/** Splits one CSV record as Go's encoding/csv reads it (no lazy quotes, comma separator). */
function csvFields(s: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let cur = '';
    if (s[i] === '"') {
      // Quoted field: runs to a quote followed by a comma or the end.
      i++;
      for (;;) {
        const q = s.indexOf('"', i);
        if (q < 0) throw bad(s, `extraneous or missing " in quoted-field`);
        cur += s.slice(i, q);
        i = q + 1;
        if (s[i] === '"') {
          cur += '"';
          i++;
          continue;
        }
        if (i < s.length && s[i] !== ',') throw bad(s, `extraneous or missing " in quoted-field`);
        break;
      }
    } else {
      const end = s.indexOf(',', i);
      cur = s.slice(i, end < 0 ? s.length : end);
      i += cur.length;
      if (cur.includes('"')) throw bad(s, `bare " in non-quoted-field`);
      // One record only: a line break outside quotes would start a second one, which buildctl never reads.
      if (/[\r\n]/.test(cur)) throw bad(s, 'a spec is one line');
    }
    fields.push(cur);
    if (i >= s.length) return fields;
    i++; // the comma
  }
}

/** Attribute keys are case-insensitive, as in buildctl; a key given twice is ambiguous and refused. */
function setAttr(attrs: Record<string, string>, rawKey: string, value: string, s: string): void {
  const key = rawKey.trim().toLowerCase();
  if (!key) throw bad(s, 'empty attribute name');
  if (Object.prototype.hasOwnProperty.call(attrs, key)) throw bad(s, `${key}= is given twice`);
  attrs[key] = value;
}

export function parseCacheSpec(s: string): CacheSpec {
  if (!s.trim()) throw invalidArgument('empty cache spec', { reason: 'invalid-spec' });
  if (s.length > MAX_SPEC_CHARS) throw bad(s, `longer than ${MAX_SPEC_CHARS} characters`);
  // Like buildctl, a bare reference means a registry cache.
  if (!s.includes('=')) return { type: 'registry', attrs: { ref: s } };
  const attrs: Record<string, string> = {};
  for (const field of csvFields(s)) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw bad(s, `field ${JSON.stringify(field)} is not key=value`);
    setAttr(attrs, field.slice(0, eq), field.slice(eq + 1), s);
  }
  const type = attrs['type'];
  if (!type) throw bad(s, 'missing type=');
  delete attrs['type'];
  return { type, attrs };
}

/**
 * A spec given as a type and an attribute map (the wire's structured form),
 * held to the same rules as the text form: keys are lowercased, a key given
 * twice (in any case) or a `type` among the attributes is refused.
 */
export function cacheSpecOf(type: string, given: Record<string, string>): CacheSpec {
  const attrs: Record<string, string> = {};
  const label = `type=${type}`;
  let chars = type.length;
  for (const [k, v] of Object.entries(given)) {
    chars += k.length + String(v).length + 2;
    if (chars > MAX_SPEC_CHARS) throw bad(label, `longer than ${MAX_SPEC_CHARS} characters`);
    if (k.trim().toLowerCase() === 'type') throw bad(label, 'type is given among the attributes');
    setAttr(attrs, k, String(v), label);
  }
  return { type, attrs };
}

/** Renders a spec back to text, for logs (never with secrets: specs carry none); parseCacheSpec reads it back. */
export function formatCacheSpec(spec: CacheSpec): string {
  const q = (f: string) => (/[",\r\n]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
  return [`type=${spec.type}`, ...Object.entries(spec.attrs).map(([k, v]) => `${k}=${v}`)].map(q).join(',');
}
