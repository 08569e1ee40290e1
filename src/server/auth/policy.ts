// Who may do what: repository patterns, grants and the one decision every
// RPC asks ("may this identity pull/push this resource name?"). Pure: no I/O,
// so the decision can only depend on the token and the request, never on
// what the store holds; that is what makes denials free of existence oracles.
//
// Resource names (see scope.ts) are '/'-joined, non-empty segments:
//   registry caches   HOST/REPO/PATH     e.g. "registry.internal:5000/cache/acme/app"
//   local, under root local/REL/PATH     e.g. "local/cache/acme/app"
//   local, elsewhere  file/ABS/PATH      e.g. "file/var/lib/buildkit/content"
// Pattern segments match name segments one to one, byte for byte (case
// sensitive), except:
//   *   inside a segment: one or more characters other than '/'
//   **  as a whole segment: one or more whole segments
// So "cache/a/**" never matches "cache/ab/x" (segments are compared whole),
// and "cache/global/*" matches "cache/global/app" but not "cache/global/app/x".

export type Action = 'pull' | 'push';
export const ACTIONS: readonly Action[] = ['pull', 'push'];

export interface Pattern {
  /** As written, for messages and the audit log. */
  readonly source: string;
  readonly segments: readonly string[];
}

export interface Grant {
  pattern: Pattern;
  actions: ReadonlySet<Action>;
}

/** A verified caller: the tenant (JWT `sub`) and what its token grants. */
export interface Identity {
  tenant: string;
  grants: readonly Grant[];
  /** The token's `jti`, when it has one: an identifier for the audit log, not a secret. */
  tokenId?: string;
}

const MAX_PATTERN = 512;

/** Throws a plain Error with a reason; token.ts turns it into a rejected token, config.ts into a config error. */
export function parsePattern(source: string): Pattern {
  if (typeof source !== 'string' || source === '') throw new Error('empty repository pattern');
  if (source.length > MAX_PATTERN) throw new Error(`repository pattern longer than ${MAX_PATTERN} characters`);
  // Control characters, whitespace and template braces are never part of a name; refusing them keeps
  // a half-substituted template ("cache/{tenant}/**") from being taken literally.
  if (/[\s\x00-\x1f\x7f{}]/.test(source)) throw new Error(`repository pattern ${JSON.stringify(source)} has a forbidden character`);
  const segments = source.split('/');
  for (const s of segments) {
    if (s === '') throw new Error(`repository pattern ${JSON.stringify(source)} has an empty segment`);
    if (s === '.' || s === '..') throw new Error(`repository pattern ${JSON.stringify(source)} has a ${s} segment`);
    if (s.includes('**') && s !== '**') throw new Error(`repository pattern ${JSON.stringify(source)}: ** must be a whole segment`);
  }
  return { source, segments };
}

/**
 * Can `p` match `s`? Shared by both levels: characters within a segment ('*'
 * eats one or more characters) and segments within a name ('**' eats one or
 * more segments). Bottom-up over two rows, so it takes O(|p|·|s|) time and
 * O(|s|) memory, and no name, however long or deep, reaches a recursion limit.
 */
function matchSeq<T>(p: readonly T[], s: readonly T[], isStar: (t: T) => boolean, eq: (a: T, b: T) => boolean): boolean {
  // next[j]: does p[i+1..] match s[j..]? cur[j]: does p[i..] match s[j..]?
  let next = new Uint8Array(s.length + 1);
  let cur = new Uint8Array(s.length + 1);
  next[s.length] = 1;
  for (let i = p.length - 1; i >= 0; i--) {
    const star = isStar(p[i]!);
    cur[s.length] = 0;
    for (let j = s.length - 1; j >= 0; j--) {
      // A star takes s[j] and then ends (next[j+1]) or takes more (cur[j+1]).
      cur[j] = star ? next[j + 1]! | cur[j + 1]! : eq(p[i]!, s[j]!) ? next[j + 1]! : 0;
    }
    [next, cur] = [cur, next];
  }
  return next[0] === 1;
}

function matchSegment(p: string, s: string): boolean {
  if (!p.includes('*')) return p === s;
  return matchSeq([...p], [...s], (c) => c === '*', (a, b) => a === b);
}

export function matchPattern(p: Pattern, name: string): boolean {
  if (name === '') return false;
  const segs = name.split('/');
  if (segs.some((s) => s === '')) return false; // names never have empty segments; refuse rather than guess
  return matchSeq(p.segments, segs, (t) => t === '**', matchSegment);
}

/** The decision. An identity may `action` on `name` when one of its grants says so. */
export function allows(identity: Identity, action: Action, name: string): boolean {
  return identity.grants.some((g) => g.actions.has(action) && matchPattern(g.pattern, name));
}

// ------------------------------------------------------------- overlap
// Used where a mistake would silently widen access: `bkcache token` refuses to
// give a tenant push on a pattern that can name a global-tier repository.

const REST = Symbol('zero or more');
type Tok<T> = T | typeof REST;

/**
 * Is there a sequence both token lists accept? A "one or more" wildcard is
 * written as ONE (a token compatible with anything) followed by REST (zero or
 * more of anything); then the usual two-pattern DP decides, bottom-up (no
 * recursion, whatever the patterns' length).
 */
function intersects<T>(x: readonly Tok<T>[], y: readonly Tok<T>[], compat: (a: T, b: T) => boolean): boolean {
  // r(i, j): can x[i..] and y[j..] accept a common sequence? Row i needs row i+1 and r(i, j+1).
  let below = new Uint8Array(y.length + 1); // row i+1
  let row = new Uint8Array(y.length + 1); // row i
  for (let i = x.length; i >= 0; i--) {
    for (let j = y.length; j >= 0; j--) {
      let r: boolean;
      if (i === x.length && j === y.length) r = true;
      else if (i < x.length && x[i] === REST) r = below[j] === 1 || (j < y.length && row[j + 1] === 1);
      else if (j < y.length && y[j] === REST) r = row[j + 1] === 1 || (i < x.length && below[j] === 1);
      else if (i === x.length || j === y.length) r = false;
      else r = compat(x[i] as T, y[j] as T) && below[j + 1] === 1;
      row[j] = r ? 1 : 0;
    }
    [below, row] = [row, below];
  }
  return below[0] === 1;
}

const ANY_CHAR = '\u0000'; // never a character of a pattern (parsePattern refuses control characters)

function segmentsOverlap(a: string, b: string): boolean {
  const toks = (s: string): Tok<string>[] => [...s].flatMap((c) => (c === '*' ? [ANY_CHAR, REST] : [c]));
  return intersects(toks(a), toks(b), (p, q) => p === ANY_CHAR || q === ANY_CHAR || p === q);
}

/** True when some resource name matches both patterns. */
export function patternsOverlap(a: Pattern, b: Pattern): boolean {
  // '**' is one segment of anything ('*') and then zero or more segments.
  const toks = (p: Pattern): Tok<string>[] => p.segments.flatMap((s) => (s === '**' ? ['*', REST] : [s]));
  return intersects(toks(a), toks(b), segmentsOverlap);
}
