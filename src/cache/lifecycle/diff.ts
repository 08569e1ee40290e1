// diff: why does a build with cache B miss cache A? Records are aligned as
// BuildKit's importer matches them: a root by its key; any other record by its
// key, its number of inputs, and for every input one link whose selector is
// equal and whose source matches (a link group lists alternatives, so one is
// enough; see cache/remotecache/v1/chains.go and solver/cachemanager.go).
// The first divergences are the records of B that A lacks although their
// inputs all are in A: the steps where B's build stopped hitting A's cache.
// A root without a result that only B has (a content checksum of a changed
// file, a new base image reference) is not itself a step; it counts as an
// input that differs for the records that link from it.
import { linkKey, type CacheGraph, type CacheNode, type Link } from '../graph.js';
import { resultOf } from './cache.js';
import { describeLayers } from './du.js';

export interface Difference {
  what: 'key' | 'selector' | 'input' | 'inputs';
  /** Input index, for selector and input differences. */
  input?: number;
  a: string | number;
  b: string | number;
}

export interface Divergence {
  record: string;
  /** Longest path from a root (a record without inputs) to this record. */
  depth: number;
  layers: { digest: string; size: number }[];
  description?: string;
  /** The record of A this one most likely replaces, and how they differ. */
  replaces?: { record: string; differences: Difference[] };
}

export interface DiffReport {
  common: number;
  onlyA: number;
  onlyB: number;
  divergences: Divergence[];
}

/** What a record of B matched in A: none (the shared EMPTY), usually one, more where A has equal records. */
type Matches = readonly CacheNode[];
const EMPTY: Matches = [];

/**
 * Sources before dependents, and each record's depth (longest path from a
 * root), in one pass without recursion (parse already refused loops).
 */
export function sourcesFirst(nodes: readonly CacheNode[]): { order: CacheNode[]; depth: Map<CacheNode, number> } {
  const order: CacheNode[] = [];
  // -1 while a record is on the stack, its depth once done.
  const depth = new Map<CacheNode, number>();
  const stack: { n: CacheNode; srcs: readonly CacheNode[]; i: number }[] = [];
  for (const start of nodes) {
    if (depth.has(start)) continue;
    depth.set(start, -1);
    stack.push({ n: start, srcs: sourcesOf(start), i: 0 });
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      if (f.i < f.srcs.length) {
        const s = f.srcs[f.i++]!;
        if (!depth.has(s)) {
          depth.set(s, -1);
          stack.push({ n: s, srcs: sourcesOf(s), i: 0 });
        }
        continue;
      }
      let d = 0;
      for (const s of f.srcs) d = Math.max(d, depth.get(s)! + 1);
      depth.set(f.n, d);
      order.push(f.n);
      stack.pop();
    }
  }
  return { order, depth };
}

function sourcesOf(n: CacheNode): readonly CacheNode[] {
  if (n.links.length === 0) return EMPTY;
  const out: CacheNode[] = [];
  for (const m of n.links) for (const l of m.values()) out.push(l.src);
  return out;
}

/**
 * Every step is a map lookup or a walk over one record's links, so the diff
 * grows linearly with the records and links of A and B (no per-link key
 * strings, no set per record: a large diff is mostly allocation).
 */
export function diffGraphs(a: CacheGraph, b: CacheGraph): DiffReport {
  // A's records by key, and its roots by key.
  const rootsA = new Map<string, CacheNode[]>();
  const byDigestA = new Map<string, CacheNode[]>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => {
    const l = m.get(k);
    if (l) l.push(v);
    else m.set(k, [v]);
  };
  for (const n of a.nodes) {
    push(byDigestA, n.digest, n);
    if (n.links.length === 0) push(rootsA, n.digest, n);
  }
  const bySource = new Map<readonly CacheNode[], Map<CacheNode, CacheNode[]>>();
  /**
   * The records of A with one key that may link from `srcA` through input 0:
   * the few with that key as they are, or, where many share it, those
   * indexed by source (built once per key), so no record scans a long list.
   */
  const dependents = (sameKey: readonly CacheNode[], srcA: CacheNode): readonly CacheNode[] => {
    if (sameKey.length <= 8) return sameKey;
    let idx = bySource.get(sameKey);
    if (!idx) {
      bySource.set(sameKey, (idx = new Map()));
      for (const c of sameKey) for (const l of c.links[0]?.values() ?? []) push(idx, l.src, c);
    }
    return idx.get(srcA) ?? EMPTY;
  };

  const { order, depth } = sourcesFirst(b.nodes);
  const match = new Map<CacheNode, Matches>();
  // The records of A that B matches, each with the last record of B that matched it (for dedup).
  const matchedA = new Map<CacheNode, CacheNode>();
  let common = 0;
  for (const n of order) {
    let found: CacheNode[] | undefined;
    if (n.links.length === 0) {
      found = rootsA.get(n.digest);
      for (const c of found ?? EMPTY) matchedA.set(c, n);
    } else {
      const sameKey = byDigestA.get(n.digest) ?? EMPTY;
      for (const l of n.links[0]!.values()) {
        if (sameKey.length === 0) break;
        for (const srcA of match.get(l.src)!) {
          for (const c of dependents(sameKey, srcA)) {
            if (matchedA.get(c) === n || c.links.length !== n.links.length) continue;
            if (!c.links[0]!.has(linkKey(srcA, l.selector)) || !inputsMatch(n, c, match)) continue;
            (found ??= []).push(c);
            matchedA.set(c, n);
          }
        }
      }
    }
    match.set(n, found ?? EMPTY);
    if (found?.length) common++;
  }

  const matched = (n: CacheNode) => match.get(n)!.length > 0;
  const transparent = (n: CacheNode) => n.links.length === 0 && !resultOf(n) && !matched(n);
  const inA = (n: CacheNode) => matched(n) || transparent(n);

  const divergences: Divergence[] = [];
  for (const n of order) {
    if (inA(n) || !n.links.every((m) => someLink(m, (l) => inA(l.src)))) continue;
    const res = resultOf(n);
    const div: Divergence = {
      record: n.digest,
      depth: depth.get(n)!,
      layers: (res?.layers ?? []).map((l) => ({ digest: l.digest, size: l.size })),
    };
    const description = res ? describeLayers(res.layers) : undefined;
    if (description) div.description = description;
    const replaced = likelyReplaced(n, match, matchedA, byDigestA);
    if (replaced) div.replaces = replaced;
    divergences.push(div);
  }
  divergences.sort((x, y) => x.depth - y.depth || (x.record < y.record ? -1 : x.record > y.record ? 1 : 0));
  return { common, onlyA: a.nodes.length - matchedA.size, onlyB: order.length - common, divergences };
}

function someLink(m: Map<string, Link>, test: (l: Link) => boolean): boolean {
  for (const l of m.values()) if (test(l)) return true;
  return false;
}

/** Inputs 1.. of `n` (B) each have a link that `c` (A) has too, with an equal selector and a matching source. */
function inputsMatch(n: CacheNode, c: CacheNode, match: Map<CacheNode, Matches>): boolean {
  for (let i = 1; i < n.links.length; i++) {
    let ok = false;
    for (const l of n.links[i]!.values()) {
      const srcs = match.get(l.src)!;
      if (srcs.length === 0) continue;
      for (const cl of c.links[i]!.values()) {
        if (cl.selector === l.selector && srcs.includes(cl.src)) {
          ok = true;
          break;
        }
      }
      if (ok) break;
    }
    if (!ok) return false;
  }
  return true;
}

/**
 * The record of A that `n` most likely took the place of: among A's records
 * with the same key, or linked from a source `n` shares with A, the one whose
 * key, input count, selectors and sources agree most; records of A that B
 * still matches elsewhere come last.
 */
function likelyReplaced(
  n: CacheNode,
  match: Map<CacheNode, Matches>,
  matchedA: Map<CacheNode, CacheNode>,
  byDigestA: Map<string, CacheNode[]>,
): Divergence['replaces'] {
  const candidates = new Set<CacheNode>(byDigestA.get(n.digest) ?? []);
  for (const m of n.links) {
    for (const l of m.values()) for (const srcA of match.get(l.src)!) for (const c of srcA.backlinks) candidates.add(c);
  }
  let best: CacheNode | undefined;
  let bestScore = 0;
  for (const c of candidates) {
    // Evidence that c is the same step: an equal key, equal input count, shared sources and selectors.
    let score = (c.digest === n.digest ? 4 : 0) + (c.links.length === n.links.length ? 1 : 0);
    n.links.forEach((m, i) => {
      const cl = c.links[i];
      if (!cl) return;
      for (const l of m.values()) {
        const srcs = match.get(l.src)!;
        for (const x of cl.values()) {
          if (srcs.includes(x.src)) score += x.selector === l.selector ? 3 : 1;
          else if (x.selector === l.selector) score += 1;
        }
      }
    });
    if (score <= 1) continue; // an equal input count alone is no evidence
    // A record B matches elsewhere was not replaced; prefer those B lacks.
    if (!matchedA.has(c)) score += 100;
    if (score > bestScore || (score === bestScore && best && c.uid < best.uid)) {
      best = c;
      bestScore = score;
    }
  }
  if (!best) return undefined;
  return { record: best.digest, differences: differences(best, n, match) };
}

/** What differs between A's record `c` and B's record `n`: key, input count, and per input the selector or the source. */
function differences(c: CacheNode, n: CacheNode, match: Map<CacheNode, Matches>): Difference[] {
  const out: Difference[] = [];
  if (c.digest !== n.digest) out.push({ what: 'key', a: c.digest, b: n.digest });
  if (c.links.length !== n.links.length) out.push({ what: 'inputs', a: c.links.length, b: n.links.length });
  const inputs = Math.min(c.links.length, n.links.length);
  for (let i = 0; i < inputs; i++) {
    const bl = [...n.links[i]!.values()];
    const al = [...c.links[i]!.values()];
    // An input is equal when some link agrees in selector and source.
    if (bl.some((l) => al.some((x) => x.selector === l.selector && match.get(l.src)!.includes(x.src)))) continue;
    const sameSource = bl.flatMap((l) => al.filter((x) => match.get(l.src)!.includes(x.src)).map((x) => [x, l] as const));
    if (sameSource.length) {
      const [x, l] = sameSource[0]!;
      out.push({ what: 'selector', input: i, a: x.selector, b: l.selector });
      continue;
    }
    const sameSelector = bl.flatMap((l) => al.filter((x) => x.selector === l.selector).map((x) => [x, l] as const));
    const [x, l] = sameSelector[0] ?? [al[0], bl[0]];
    if (x && l) out.push({ what: 'input', input: i, a: x.src.digest, b: l.src.digest });
  }
  return out;
}
