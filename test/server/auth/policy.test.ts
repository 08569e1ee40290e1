// Repository patterns: the grammar, the matcher (checked against a regex
// reference model on random input), and the overlap test `bkcache token`
// relies on to keep tenants out of the global tier.
import { describe, expect, it } from 'vitest';
import { allows, matchPattern, parsePattern, patternsOverlap, type Identity } from '../../../src/server/auth/policy.js';
import { refMatch, rng } from './reference-model.js';

describe('parsePattern', () => {
  it('refuses patterns that are not a path of non-empty segments', () => {
    for (const bad of ['', '/a', 'a/', 'a//b', 'a/./b', 'a/../b', 'a/**b', 'a/b**', 'a/***', 'a b', 'a/{tenant}/**', 'a\tb', 'x'.repeat(513)]) {
      expect(() => parsePattern(bad), bad).toThrow();
    }
    for (const good of ['reg.io/cache/*', '**', 'reg.io:5000/cache/a-*/**', 'local/cache/acme/**', 'file/var/lib/buildkit/**']) {
      expect(parsePattern(good).source).toBe(good);
    }
  });
});

describe('matchPattern', () => {
  const m = (p: string, n: string) => matchPattern(parsePattern(p), n);
  it('compares whole segments: no prefix confusion', () => {
    expect(m('reg.io/cache/a/**', 'reg.io/cache/a/app')).toBe(true);
    expect(m('reg.io/cache/a/**', 'reg.io/cache/ab/app')).toBe(false);
    expect(m('reg.io/cache/a/**', 'reg.io/cache/a')).toBe(false);
    expect(m('reg.io/cache/a', 'reg.io/cache/ab')).toBe(false);
    expect(m('reg.io/cache/a*', 'reg.io/cache/ab')).toBe(true);
    expect(m('reg.io/cache/a*', 'reg.io/cache/a')).toBe(false); // '*' is one or more characters
    expect(m('reg.io/cache/*', 'reg.io/cache/app/sub')).toBe(false);
    expect(m('reg.io/cache/**', 'reg.io/cache/app/sub')).toBe(true);
    expect(m('reg.io/**/app', 'reg.io/a/b/c/app')).toBe(true);
    expect(m('reg.io:5000/cache/**', 'reg.io/cache/x')).toBe(false);
  });
  it('is case sensitive and never matches empty segments', () => {
    expect(m('reg.io/cache/**', 'REG.io/cache/x')).toBe(false);
    expect(m('reg.io/cache/**', 'reg.io/Cache/x')).toBe(false);
    expect(m('**', 'reg.io//x')).toBe(false);
    expect(m('**', 'reg.io/x/')).toBe(false);
    expect(m('**', '')).toBe(false);
  });
  it('keeps local and file names apart from each other and from registries', () => {
    expect(m('local/**', 'localhost/x')).toBe(false);
    expect(m('local/**', 'file/srv/x')).toBe(false);
    expect(m('*/cache/**', 'local/cache/x')).toBe(true); // a wildcard host is the operator's choice
  });
  it('survives patterns built to be slow', () => {
    const p = parsePattern(Array(30).fill('**').join('/') + '/z');
    const t = Date.now();
    expect(matchPattern(p, Array(60).fill('a').join('/'))).toBe(false);
    expect(matchPattern(parsePattern('*a*a*a*a*a*a*a*a*b'), 'a'.repeat(200))).toBe(false);
    expect(Date.now() - t).toBeLessThan(500);
  });

  it('agrees with the regex reference model on random patterns and names', () => {
    const r = rng(1);
    const words = ['a', 'ab', 'b', 'cache', 'global', 'acme', 'x', 'A', 'a-b', 'a.b', 'reg.io', 'reg.io:5000', 'local', 'file'];
    const patSeg = () => r.pick([...words, '*', '**', 'a*', '*b', '*a*', 'c*e', 'reg.*']);
    const nameSeg = () => r.pick([...words, 'cae', 'cache2', 'bab', 'aab', 'reg.iox']);
    let agreed = 0;
    for (let i = 0; i < 20_000; i++) {
      const p = Array.from({ length: r.int(1, 5) }, patSeg).join('/');
      const n = Array.from({ length: r.int(1, 6) }, nameSeg).join('/');
      let pattern;
      try {
        pattern = parsePattern(p);
      } catch {
        continue;
      }
      expect(matchPattern(pattern, n), `${p} ~ ${n}`).toBe(refMatch(p, n));
      agreed++;
    }
    expect(agreed).toBeGreaterThan(15_000);
  });
});

describe('allows', () => {
  it('needs a grant with the action on a matching pattern', () => {
    const who: Identity = {
      tenant: 'acme',
      grants: [
        { pattern: parsePattern('reg.io/cache/global/**'), actions: new Set(['pull']) },
        { pattern: parsePattern('reg.io/cache/acme/**'), actions: new Set(['pull', 'push']) },
      ],
    };
    expect(allows(who, 'pull', 'reg.io/cache/global/app')).toBe(true);
    expect(allows(who, 'push', 'reg.io/cache/global/app')).toBe(false);
    expect(allows(who, 'push', 'reg.io/cache/acme/app')).toBe(true);
    expect(allows(who, 'pull', 'reg.io/cache/acme2/app')).toBe(false);
    expect(allows({ tenant: 'none', grants: [] }, 'pull', 'reg.io/cache/global/app')).toBe(false);
  });
});

describe('patternsOverlap', () => {
  const o = (a: string, b: string) => patternsOverlap(parsePattern(a), parsePattern(b));
  it('finds shared names, and only those', () => {
    expect(o('reg.io/cache/global/**', 'reg.io/cache/global/**')).toBe(true);
    expect(o('reg.io/cache/*/**', 'reg.io/cache/global/**')).toBe(true);
    expect(o('reg.io/**', 'reg.io/cache/global/app')).toBe(true);
    expect(o('reg.io/cache/g*/**', 'reg.io/cache/*l/**')).toBe(true);
    expect(o('reg.io/cache/acme/**', 'reg.io/cache/global/**')).toBe(false);
    expect(o('reg.io/cache/a/**', 'reg.io/cache/ab/**')).toBe(false);
    expect(o('reg.io/cache/ab*', 'reg.io/cache/*ba')).toBe(true); // "aba"
    expect(o('reg.io/cache/a*', 'reg.io/cache/a')).toBe(false);
    expect(o('reg.io/cache/**', 'reg.io/cache')).toBe(false);
    expect(o('**', 'file/x')).toBe(true);
  });
  it('is never false when a random name matches both', () => {
    const r = rng(2);
    const seg = () => r.pick(['a', 'b', 'ab', '*', 'a*', '*b', '**']);
    const nseg = () => r.pick(['a', 'b', 'ab', 'ba', 'aab', 'abb']);
    let both = 0;
    for (let i = 0; i < 5_000; i++) {
      const a = Array.from({ length: r.int(1, 4) }, seg).join('/');
      const b = Array.from({ length: r.int(1, 4) }, seg).join('/');
      const pa = parsePattern(a);
      const pb = parsePattern(b);
      const overlap = patternsOverlap(pa, pb);
      expect(overlap).toBe(patternsOverlap(pb, pa));
      for (let k = 0; k < 20; k++) {
        const n = Array.from({ length: r.int(1, 5) }, nseg).join('/');
        if (matchPattern(pa, n) && matchPattern(pb, n)) {
          both++;
          expect(overlap, `${a} and ${b} both match ${n}`).toBe(true);
        }
      }
    }
    expect(both).toBeGreaterThan(100);
  });
});

describe('input that could reach a recursion limit', () => {
  it('matches names of 200 000 segments, or one segment of 200 000 characters, without a stack overflow', () => {
    const deep = Array.from({ length: 200_000 }, () => 'a').join('/');
    expect(matchPattern(parsePattern('local/**'), `local/${deep}`)).toBe(true);
    expect(matchPattern(parsePattern('local/**/b'), `local/${deep}`)).toBe(false);
    const wide = 'x'.repeat(200_000);
    expect(matchPattern(parsePattern('local/*x'), `local/${wide}`)).toBe(true);
    expect(matchPattern(parsePattern('local/*y'), `local/${wide}`)).toBe(false);
  });

});
