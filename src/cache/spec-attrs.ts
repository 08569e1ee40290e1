// Checks a spec's attributes before a backend opens anything: an unknown
// attribute (a typo such as image-manfest) or a bad value of mode or
// compression is an error with a suggestion, as BuildKit refuses an invalid
// cache mode and an unknown compression type rather than silently exporting
// something else. Values of the boolean attributes are parsed where they are
// used (parseGoBool).
import { invalidArgument } from '../errors.js';
import { closest, didYouMean } from '../suggest.js';

/** Attributes every cache type takes (BuildKit's cache export options). */
export const COMMON_ATTRS = ['mode', 'image-manifest', 'oci-mediatypes', 'compression', 'compression-level', 'force-compression', 'ignore-error'] as const;

/** Values BuildKit accepts (solver cache export mode; util/compression.Parse). */
const ENUMS: Record<string, readonly string[]> = {
  mode: ['min', 'max'],
  compression: ['uncompressed', 'gzip', 'estargz', 'zstd'],
};

export function checkSpecAttrs(type: string, attrs: Record<string, string>, own: readonly string[]): void {
  const known = [...own, ...COMMON_ATTRS];
  for (const [key, value] of Object.entries(attrs)) {
    if (!known.includes(key)) {
      throw invalidArgument(`unknown attribute ${JSON.stringify(key)} for type=${type}${didYouMean(key, known)} (known: ${known.join(', ')})`, {
        reason: 'unknown-attribute',
      });
    }
    const allowed = ENUMS[key];
    if (allowed && !allowed.includes(value)) {
      const near = closest(value, allowed);
      throw invalidArgument(
        `invalid ${key} ${JSON.stringify(value)}: want ${allowed.join(', ')}${near ? `; did you mean ${key}=${near}?` : ''}`,
        { reason: 'invalid-option' },
      );
    }
    if (key === 'compression-level' && !/^-?\d+$/.test(value)) {
      throw invalidArgument(`invalid compression-level ${JSON.stringify(value)}: want an integer`, { reason: 'invalid-option' });
    }
  }
}
