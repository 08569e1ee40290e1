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
import type { CacheGraph, CacheNode } from '../graph.js';
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

/** Sources before dependents, without recursion (parse already refused loops). */
export function sourcesFirst(nodes: readonly CacheNode[]): CacheNode[] {
  const out: CacheNode[] = [];
  const state = new Map<CacheNode, 1 | 2>();
  for (const start of nodes) {
    if (state.has(start)) continue;
    const stack: { n: CacheNode; srcs: CacheNode[]; i: number }[] = [{ n: start, srcs: sourcesOf(start), i: 0 }];
    state.set(start, 1);
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      if (f.i < f.srcs.length) {
        const s = f.srcs[f.i++]!;
        if (!state.has(s)) {
          state.set(s, 1);
          stack.push({ n: s, srcs: sourcesOf(s), i: 0 });
        }
        continue;
      }
      state.set(f.n, 2);
      out.push(f.n);
      stack.pop();
    }
  }
  return out;
}

function sourcesOf(n: CacheNode): CacheNode[] {
  const out: CacheNode[] = [];
  for (const m of n.links) for (const l of m.values()) out.push(l.src);
  return out;
}

const depKey = (digest: string, input: number, selector: string) => `${digest}\u0000${input}\u0000${selector}`;

export function diffGraphs(a: CacheGraph, b: CacheGraph): DiffReport {
  // A's records by key (roots) and by (source, key, input, selector) (dependents).
  const rootsA = new Map<string, CacheNode[]>();
  const byDigestA = new Map<string, CacheNode[]>();
  const depsA = new Map<CacheNode, Map<string, CacheNode[]>>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V) => {
    const l = m.get(k);
    if (l) l.push(v);
    else m.set(k, [v]);
  };
  for (const n of a.nodes) {
    push(byDigestA, n.digest, n);
    if (n.links.length === 0) push(rootsA, n.digest, n);
    n.links.forEach((m, input) => {
      for (const l of m.values()) {
        let d = depsA.get(l.src);
        if (!d) depsA.set(l.src, (d = new Map()));
        push(d, depKey(n.digest, input, l.selector), n);
      }
    });
  }

  const order = sourcesFirst(b.nodes);
  const match = new Map<CacheNode, Set<CacheNode>>();
  const empty = new Set<CacheNode>();
  const matchedA = new Set<CacheNode>();
  for (const n of order) {
    let found: Set<CacheNode>;
    if (n.links.length === 0) {
      found = new Set(rootsA.get(n.digest) ?? []);
    } else {
      found = new Set();
      for (const l of n.links[0]!.values()) {
        for (const srcA of match.get(l.src) ?? empty) {
          for (const c of depsA.get(srcA)?.get(depKey(n.digest, 0, l.selector)) ?? []) {
            if (c.links.length === n.links.length && inputsMatch(n, c, match)) found.add(c);
          }
        }
      }
    }
    match.set(n, found);
    for (const c of found) matchedA.add(c);
  }

  const common = order.filter((n) => match.get(n)!.size > 0).length;
  const matched = (n: CacheNode) => match.get(n)!.size > 0;
  const transparent = (n: CacheNode) => n.links.length === 0 && !resultOf(n) && !matched(n);
  const depth = new Map<CacheNode, number>();
  for (const n of order) {
    let d = 0;
    for (const s of sourcesOf(n)) d = Math.max(d, depth.get(s)! + 1);
    depth.set(n, d);
  }

  const divergences: Divergence[] = [];
  for (const n of order) {
    if (matched(n) || transparent(n)) continue;
    const inputsInA = n.links.every((m) => [...m.values()].some((l) => matched(l.src) || transparent(l.src)));
    if (!inputsInA) continue;
    const res = resultOf(n);
    const div: Divergence = {
      record: n.digest,
      depth: depth.get(n)!,
      layers: (res?.layers ?? []).map((l) => ({ digest: l.digest, size: l.size })),
    };
    const description = res ? describeLayers(res.layers) : undefined;
    if (description) div.description = description;
    const replaced = likelyReplaced(n, match, matchedA, byDigestA, depsA);
    if (replaced) div.replaces = replaced;
    divergences.push(div);
  }
  divergences.sort((x, y) => x.depth - y.depth || (x.record < y.record ? -1 : x.record > y.record ? 1 : 0));
  return { common, onlyA: a.nodes.length - matchedA.size, onlyB: order.length - common, divergences };
}

/** Inputs 1.. of `n` (B) each have a link that `c` (A) has too, with an equal selector and a matching source. */
function inputsMatch(n: CacheNode, c: CacheNode, match: Map<CacheNode, Set<CacheNode>>): boolean {
  for (let i = 1; i < n.links.length; i++) {
    let ok = false;
    for (const l of n.links[i]!.values()) {
      const srcs = match.get(l.src);
      if (!srcs?.size) continue;
      for (const cl of c.links[i]!.values()) {
        if (cl.selector === l.selector && srcs.has(cl.src)) {
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
  match: Map<CacheNode, Set<CacheNode>>,
  matchedA: Set<CacheNode>,
  byDigestA: Map<string, CacheNode[]>,
  depsA: Map<CacheNode, Map<string, CacheNode[]>>,
): Divergence['replaces'] {
  const candidates = new Set<CacheNode>(byDigestA.get(n.digest) ?? []);
  n.links.forEach((m) => {
    for (const l of m.values()) {
      for (const srcA of match.get(l.src) ?? []) for (const deps of depsA.get(srcA)?.values() ?? []) for (const c of deps) candidates.add(c);
    }
  });
  let best: CacheNode | undefined;
  let bestScore = 0;
  for (const c of candidates) {
    // Evidence that c is the same step: an equal key, equal input count, shared sources and selectors.
    let score = (c.digest === n.digest ? 4 : 0) + (c.links.length === n.links.length ? 1 : 0);
    n.links.forEach((m, i) => {
      const cl = c.links[i];
      if (!cl) return;
      for (const l of m.values()) {
        const srcs = match.get(l.src);
        for (const x of cl.values()) {
          if (srcs?.has(x.src)) score += x.selector === l.selector ? 3 : 1;
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
function differences(c: CacheNode, n: CacheNode, match: Map<CacheNode, Set<CacheNode>>): Difference[] {
  const out: Difference[] = [];
  if (c.digest !== n.digest) out.push({ what: 'key', a: c.digest, b: n.digest });
  if (c.links.length !== n.links.length) out.push({ what: 'inputs', a: c.links.length, b: n.links.length });
  const inputs = Math.min(c.links.length, n.links.length);
  for (let i = 0; i < inputs; i++) {
    const bl = [...n.links[i]!.values()];
    const al = [...c.links[i]!.values()];
    // An input is equal when some link agrees in selector and source.
    if (bl.some((l) => al.some((x) => x.selector === l.selector && match.get(l.src)?.has(x.src)))) continue;
    const sameSource = bl.flatMap((l) => al.filter((x) => match.get(l.src)?.has(x.src)).map((x) => [x, l] as const));
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
