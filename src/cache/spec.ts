// Cache specs in buildctl's attribute syntax: "type=registry,ref=host/repo:tag".
// buildctl reads them as one CSV record of key=value fields, so a value that
// contains a comma is written in double quotes.
import { invalidArgument } from '../errors.js';

export interface CacheSpec {
  type: string;
  attrs: Record<string, string>;
}

/** Splits one CSV record (RFC 4180 quoting), as Go's encoding/csv reads it. */
function csvFields(s: string): string[] {
  const fields: string[] = [];
  let cur = '';
  let quoted = false;
  let i = 0;
  let atStart = true;
  while (i < s.length) {
    const c = s[i]!;
    if (quoted) {
      if (c === '"' && s[i + 1] === '"') {
        cur += '"';
        i += 2;
        continue;
      }
      if (c === '"') {
        quoted = false;
        i++;
        continue;
      }
      cur += c;
      i++;
      continue;
    }
    if (c === '"' && atStart) {
      quoted = true;
      atStart = false;
      i++;
      continue;
    }
    if (c === ',') {
      fields.push(cur);
      cur = '';
      atStart = true;
      i++;
      continue;
    }
    cur += c;
    atStart = false;
    i++;
  }
  if (quoted) throw invalidArgument(`invalid cache spec ${JSON.stringify(s)}: unterminated quote`, { reason: 'invalid-spec' });
  fields.push(cur);
  return fields;
}

export function parseCacheSpec(s: string): CacheSpec {
  if (!s.trim()) throw invalidArgument('empty cache spec', { reason: 'invalid-spec' });
  // Like buildctl, a bare reference means a registry cache.
  if (!s.includes('=')) return { type: 'registry', attrs: { ref: s } };
  const attrs: Record<string, string> = {};
  for (const field of csvFields(s)) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw invalidArgument(`invalid cache spec ${JSON.stringify(s)}: field ${JSON.stringify(field)} is not key=value`, { reason: 'invalid-spec' });
    attrs[field.slice(0, eq).trim().toLowerCase()] = field.slice(eq + 1);
  }
  const type = attrs['type'];
  if (!type) throw invalidArgument(`invalid cache spec ${JSON.stringify(s)}: missing type=`, { reason: 'invalid-spec' });
  delete attrs['type'];
  return { type, attrs };
}

/** Renders a spec back to text, for logs (never with secrets: specs carry none). */
export function formatCacheSpec(spec: CacheSpec): string {
  const q = (v: string) => (/[",]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [`type=${spec.type}`, ...Object.entries(spec.attrs).map(([k, v]) => `${k}=${q(v)}`)].join(',');
}
