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
import type { CacheGraph, CacheNode, Links } from '../graph.js';
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

/**
 * Sources before dependents, and each record's depth (longest path from a
 * root, by node index), in one pass without recursion (parse already refused
 * loops). `nodes` are a graph's nodes, in order.
 */
export function sourcesFirst(nodes: readonly CacheNode[]): { order: CacheNode[]; depth: Int32Array } {
  const n = nodes.length;
  const order: CacheNode[] = [];
  // -2 new, -1 while on the stack, the depth once done.
  const depth = new Int32Array(n).fill(-2);
  // A frame: a record, and the input and link within it to look at next.
  const stackNode = new Int32Array(n);
  const stackInput = new Int32Array(n);
  const stackLink = new Int32Array(n);
  for (const start of nodes) {
    if (depth[start.index] !== -2) continue;
    depth[start.index] = -1;
    let sp = 0;
    stackNode[sp] = start.index;
    stackInput[sp] = 0;
    stackLink[sp++] = 0;
    while (sp > 0) {
      const f = sp - 1;
      const node = nodes[stackNode[f]!]!;
      let next = -1;
      while (next === -1 && stackInput[f]! < node.links.length) {
        const group = node.links[stackInput[f]!]!.all;
        if (stackLink[f]! >= group.length) {
          stackInput[f]!++;
          stackLink[f] = 0;
          continue;
        }
        const s = group[stackLink[f]!++]!.src.index;
        if (depth[s] === -2) next = s;
      }
      if (next !== -1) {
        depth[next] = -1;
        stackNode[sp] = next;
        stackInput[sp] = 0;
        stackLink[sp++] = 0;
        continue;
      }
      let d = 0;
      for (const g of node.links) for (const l of g.all) d = Math.max(d, depth[l.src.index]! + 1);
      depth[node.index] = d;
      order.push(node);
      sp--;
    }
  }
  return { order, depth };
}

/**
 * A graph's records grouped by key: those with key k are
 * members[start[g]] .. members[start[g+1]-1], in graph order, where g =
 * group.get(k). A Map from the key strings the records already hold and two
 * typed arrays, rather than an array per key.
 */
interface ByKey {
  group: Map<string, number>;
  start: Int32Array;
  members: Int32Array;
}

function byKey(nodes: readonly CacheNode[], take: (n: CacheNode) => boolean): ByKey {
  const group = new Map<string, number>();
  const groupOf = new Int32Array(nodes.length).fill(-1);
  const counts: number[] = [];
  for (const n of nodes) {
    if (!take(n)) continue;
    let g = group.get(n.digest);
    if (g === undefined) {
      group.set(n.digest, (g = counts.length));
      counts.push(0);
    }
    groupOf[n.index] = g;
    counts[g]!++;
  }
  const start = new Int32Array(counts.length + 1);
  for (let g = 0; g < counts.length; g++) start[g + 1] = start[g]! + counts[g]!;
  const fill = start.slice(0, counts.length);
  const members = new Int32Array(start[counts.length]!);
  for (let i = 0; i < nodes.length; i++) if (groupOf[i]! !== -1) members[fill[groupOf[i]!]!++] = i;
  return { group, start, members };
}

/**
 * What each record of B matched in A: the indexes of A's records
 * pool[from[b]] .. pool[to[b]-1] (none, usually one, more where A has equal
 * records), appended to one growing array as records are matched.
 */
class Matches {
  pool = new Int32Array(1024);
  private used = 0;
  readonly from: Int32Array;
  readonly to: Int32Array;

  constructor(records: number) {
    this.from = new Int32Array(records);
    this.to = new Int32Array(records);
  }

  begin(b: number): void {
    this.from[b] = this.to[b] = this.used;
  }

  /** Appends a match of the record begun last. */
  push(b: number, a: number): void {
    if (this.used === this.pool.length) {
      const bigger = new Int32Array(this.pool.length * 2);
      bigger.set(this.pool);
      this.pool = bigger;
    }
    this.pool[this.used++] = a;
    this.to[b] = this.used;
  }

  any(b: number): boolean {
    return this.to[b]! > this.from[b]!;
  }

  has(b: number, a: number): boolean {
    for (let k = this.from[b]!; k < this.to[b]!; k++) if (this.pool[k] === a) return true;
    return false;
  }
}

/** Above this many records with one key, A's records of that key are indexed by their input-0 sources. */
const SCAN_LIMIT = 8;

/**
 * Every step is a map lookup or a walk over one record's links, so the diff
 * grows linearly with the records and links of A and B, and per-record data
 * lives in typed arrays indexed by node index (a large diff was mostly
 * allocation: per-record arrays, Maps and key strings).
 */
export function diffGraphs(a: CacheGraph, b: CacheGraph): DiffReport {
  const nodesA = a.nodes;
  const byDigestA = byKey(nodesA, () => true);
  const rootsA = byKey(nodesA, (n) => n.links.length === 0);
  // For a key many of A's records share: its records by input-0 source (index), built once per key.
  const bySource = new Map<number, Map<number, number[]>>();

  const { order, depth } = sourcesFirst(b.nodes);
  const match = new Matches(b.nodes.length);
  // The records of A that B matches, each with 1 + the last record of B that matched it (for dedup).
  const matchedA = new Int32Array(nodesA.length);
  let matchedCount = 0;
  const matchA = (bi: number, c: number) => {
    if (matchedA[c] === 0) matchedCount++;
    matchedA[c] = bi + 1;
    match.push(bi, c);
  };
  let common = 0;
  for (const n of order) {
    const bi = n.index;
    match.begin(bi);
    if (n.links.length === 0) {
      const g = rootsA.group.get(n.digest);
      if (g !== undefined) for (let k = rootsA.start[g]!; k < rootsA.start[g + 1]!; k++) matchA(bi, rootsA.members[k]!);
    } else {
      const g = byDigestA.group.get(n.digest);
      if (g !== undefined) {
        const lo = byDigestA.start[g]!;
        const hi = byDigestA.start[g + 1]!;
        for (const l of n.links[0]!.all) {
          const s = l.src.index;
          for (let k = match.from[s]!; k < match.to[s]!; k++) {
            const srcA = match.pool[k]!;
            // The records of A with n's key that may link from srcA through input 0.
            let deps: ArrayLike<number> = byDigestA.members;
            let from = lo;
            let to = hi;
            if (hi - lo > SCAN_LIMIT) {
              let idx = bySource.get(g);
              if (!idx) bySource.set(g, (idx = indexBySource(nodesA, byDigestA.members.subarray(lo, hi))));
              deps = idx.get(srcA) ?? [];
              from = 0;
              to = deps.length;
            }
            for (let p = from; p < to; p++) {
              const ci = deps[p]!;
              const c = nodesA[ci]!;
              if (matchedA[ci] === bi + 1 || c.links.length !== n.links.length) continue;
              if (!c.links[0]!.has(nodesA[srcA]!, l.selector) || !inputsMatch(n, c, match)) continue;
              matchA(bi, ci);
            }
          }
        }
      }
    }
    if (match.any(bi)) common++;
  }

  const matched = (n: CacheNode) => match.any(n.index);
  const transparent = (n: CacheNode) => n.links.length === 0 && !resultOf(n) && !matched(n);
  const inA = (n: CacheNode) => matched(n) || transparent(n);

  const divergences: Divergence[] = [];
  for (const n of order) {
    if (inA(n) || !n.links.every((m) => someLink(m, inA))) continue;
    const res = resultOf(n);
    const div: Divergence = {
      record: n.digest,
      depth: depth[n.index]!,
      layers: (res?.layers ?? []).map((l) => ({ digest: l.digest, size: l.size })),
    };
    const description = res ? describeLayers(res.layers) : undefined;
    if (description) div.description = description;
    const replaced = likelyReplaced(n, a, match, matchedA, byDigestA);
    if (replaced) div.replaces = replaced;
    divergences.push(div);
  }
  divergences.sort((x, y) => x.depth - y.depth || (x.record < y.record ? -1 : x.record > y.record ? 1 : 0));
  return { common, onlyA: nodesA.length - matchedCount, onlyB: order.length - common, divergences };
}

/** Records (indexes into `nodes`) by the index of each of their input-0 sources. */
function indexBySource(nodes: readonly CacheNode[], members: Int32Array): Map<number, number[]> {
  const idx = new Map<number, number[]>();
  for (const ci of members) {
    for (const l of nodes[ci]!.links[0]?.all ?? []) {
      const list = idx.get(l.src.index);
      if (list) list.push(ci);
      else idx.set(l.src.index, [ci]);
    }
  }
  return idx;
}

function someLink(m: Links, test: (src: CacheNode) => boolean): boolean {
  for (const l of m.all) if (test(l.src)) return true;
  return false;
}

/** Inputs 1.. of `n` (B) each have a link that `c` (A) has too, with an equal selector and a matching source. */
function inputsMatch(n: CacheNode, c: CacheNode, match: Matches): boolean {
  for (let i = 1; i < n.links.length; i++) {
    let ok = false;
    for (const l of n.links[i]!.all) {
      const s = l.src.index;
      if (!match.any(s)) continue;
      for (const cl of c.links[i]!.all) {
        if (cl.selector === l.selector && match.has(s, cl.src.index)) {
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
function likelyReplaced(n: CacheNode, a: CacheGraph, match: Matches, matchedA: Int32Array, byDigestA: ByKey): Divergence['replaces'] {
  const candidates = new Set<number>();
  const g = byDigestA.group.get(n.digest);
  if (g !== undefined) for (let k = byDigestA.start[g]!; k < byDigestA.start[g + 1]!; k++) candidates.add(byDigestA.members[k]!);
  const deps = a.dependentIndexes();
  for (const m of n.links) {
    for (const l of m.all) {
      const s = l.src.index;
      for (let k = match.from[s]!; k < match.to[s]!; k++) {
        const srcA = match.pool[k]!;
        for (let p = deps.start[srcA]!; p < deps.start[srcA + 1]!; p++) candidates.add(deps.list[p]!);
      }
    }
  }
  let best: CacheNode | undefined;
  let bestScore = 0;
  for (const ci of candidates) {
    const c = a.nodes[ci]!;
    // Evidence that c is the same step: an equal key, equal input count, shared sources and selectors.
    let score = (c.digest === n.digest ? 4 : 0) + (c.links.length === n.links.length ? 1 : 0);
    n.links.forEach((m, i) => {
      const cl = c.links[i];
      if (!cl) return;
      for (const l of m.all) {
        for (const x of cl.all) {
          if (match.has(l.src.index, x.src.index)) score += x.selector === l.selector ? 3 : 1;
          else if (x.selector === l.selector) score += 1;
        }
      }
    });
    if (score <= 1) continue; // an equal input count alone is no evidence
    // A record B matches elsewhere was not replaced; prefer those B lacks.
    if (matchedA[ci] === 0) score += 100;
    if (score > bestScore || (score === bestScore && best && c.uid < best.uid)) {
      best = c;
      bestScore = score;
    }
  }
  if (!best) return undefined;
  return { record: best.digest, differences: differences(best, n, match) };
}

/** What differs between A's record `c` and B's record `n`: key, input count, and per input the selector or the source. */
function differences(c: CacheNode, n: CacheNode, match: Matches): Difference[] {
  const out: Difference[] = [];
  if (c.digest !== n.digest) out.push({ what: 'key', a: c.digest, b: n.digest });
  if (c.links.length !== n.links.length) out.push({ what: 'inputs', a: c.links.length, b: n.links.length });
  const inputs = Math.min(c.links.length, n.links.length);
  for (let i = 0; i < inputs; i++) {
    const bl = n.links[i]!.all;
    const al = c.links[i]!.all;
    const same = (x: (typeof al)[number], l: (typeof bl)[number]) => match.has(l.src.index, x.src.index);
    // An input is equal when some link agrees in selector and source.
    if (bl.some((l) => al.some((x) => x.selector === l.selector && same(x, l)))) continue;
    const sameSource = bl.flatMap((l) => al.filter((x) => same(x, l)).map((x) => [x, l] as const));
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
