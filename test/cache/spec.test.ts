// Cache specs read as buildctl reads them: one CSV record under Go's
// encoding/csv rules (https://pkg.go.dev/encoding/csv), then key=value
// fields. What the daemon authorizes is what it then opens, so the parser
// must not be more lenient than buildctl in ways that make a spec mean two things.
import { describe, expect, it } from 'vitest';
import { cacheSpecOf, formatCacheSpec, parseCacheSpec } from '../../src/cache/spec.js';
import { BkError } from '../../src/errors.js';

function refused(s: string): BkError {
  try {
    parseCacheSpec(s);
  } catch (err) {
    return err as BkError;
  }
  throw new Error(`accepted ${JSON.stringify(s)}`);
}

describe('cache specs', () => {
  it('reads fields, quoted fields with commas and "" escapes', () => {
    expect(parseCacheSpec('type=local,dest=/a,tag=v1')).toEqual({ type: 'local', attrs: { dest: '/a', tag: 'v1' } });
    expect(parseCacheSpec('type=local,"dest=/a,b","tag=x""y"')).toEqual({ type: 'local', attrs: { dest: '/a,b', tag: 'x"y' } });
    expect(parseCacheSpec('TYPE=registry,Ref=reg.io/a')).toEqual({ type: 'registry', attrs: { ref: 'reg.io/a' } });
    expect(parseCacheSpec('reg.io/app:tag')).toEqual({ type: 'registry', attrs: { ref: 'reg.io/app:tag' } });
    expect(parseCacheSpec('type=local,"dest=a\nb"').attrs.dest).toBe('a\nb');
  });

  it.each([
    ['type=local,dest=ab"c', 'bare "'],
    ['type=local,dest="abc"', 'bare "'], // the quote must open the field, not the value
    ['type=local,"dest=abc"x', 'extraneous or missing "'],
    ['type=local,"dest=abc', 'extraneous or missing "'],
    ['type=local, "dest=abc"', 'bare "'],
    ['type=local,dest=a\nb', 'one line'],
    ['type=local,dest=/a,dest=/b', 'given twice'],
    ['type=local,DEST=/a,dest=/b', 'given twice'],
    ['type=local,dest', 'not key=value'],
    ['type=local,=x', 'not key=value'],
    ['dest=/a', 'missing type='],
  ])('refuses %j (%s), as buildctl would', (s, why) => {
    const e = refused(s);
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.reason).toBe('invalid-spec');
    expect(e.message).toContain(why);
  });

  it('formats specs so that they parse back to the same attributes', () => {
    for (const attrs of [{ dest: '/a,b' }, { dest: 'x"y' }, { tag: 'plain', dest: 'a\nb' }] as Record<string, string>[]) {
      const spec = { type: 'local', attrs };
      expect(parseCacheSpec(formatCacheSpec(spec))).toEqual(spec);
    }
  });

  it('holds the structured form to the same rules', () => {
    expect(cacheSpecOf('local', { DEST: '/a' })).toEqual({ type: 'local', attrs: { dest: '/a' } });
    expect(() => cacheSpecOf('local', { dest: '/a', Dest: '/b' })).toThrow(/given twice/);
    expect(() => cacheSpecOf('local', { type: 'registry' })).toThrow(/type is given among the attributes/);
  });
});

describe('spec size', () => {
  it('refuses a spec longer than any real one, echoing only its start', () => {
    const e = refused(`type=local,dest=${'a'.repeat(1 << 20)}`);
    expect(e.message).toMatch(/longer than 16384 characters/);
    expect(e.message.length).toBeLessThan(300);
    expect(() => cacheSpecOf('local', { dest: 'a'.repeat(1 << 20) })).toThrow(/longer than 16384/);
  });
});
