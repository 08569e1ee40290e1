// A small, separate model of the authorization rules, written the obvious way
// (regular expressions, a path stack) so the fuzz tests compare two
// implementations that share no code: README's "Multi-tenant" section in
// executable form.

/** Seeded PRNG (mulberry32): failures reproduce. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}

/** Pattern → anchored regex: '**' is one or more segments, '*' one or more non-'/' characters. */
export function refRegex(pattern: string): RegExp {
  const seg = (s: string) => (s === '**' ? '[^/]+(?:/[^/]+)*' : s.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]+'));
  return new RegExp(`^${pattern.split('/').map(seg).join('/')}$`);
}

export function refMatch(pattern: string, name: string): boolean {
  return refRegex(pattern).test(name);
}

export interface RefGrant {
  pattern: string;
  actions: string[];
}

export function refAllows(grants: RefGrant[], action: string, name: string): boolean {
  return grants.some((g) => g.actions.includes(action) && refMatch(g.pattern, name));
}

// The registry's path-component grammar (distribution/reference): what a valid repository segment is.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/**
 * Name of "HOST/PATH" (tag and digest already split off by the generator), or
 * undefined when the reference is invalid. Hosts are written with '.' or ':'
 * (or are localhost), so none of them falls to Docker Hub.
 */
export function refRegistryName(host: string, path: string): string | undefined {
  const segs = path.split('/');
  if (segs.some((s) => !COMPONENT.test(s))) return undefined;
  return `${host}/${path}`;
}

/** Name of a local path, as seen by a daemon whose root is `root` (absolute, normalized). */
export function refLocalName(p: string, root: string): string {
  const stack = p.startsWith('/') ? [] : root.split('/').filter(Boolean);
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') stack.pop();
    else stack.push(s);
  }
  const r = root.split('/').filter(Boolean);
  const inside = r.every((s, i) => stack[i] === s);
  if (inside) return ['local', ...stack.slice(r.length)].join('/');
  return ['file', ...stack].join('/');
}
