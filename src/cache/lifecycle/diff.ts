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
import { flatDependents, type CacheGraph, type CacheNode, type Dependents, type FlatGraph, type Links } from '../graph.js';
import { resultOf } from './cache.js';
import { byKey, Matches, sourcesFirst, type ByKey } from './diff-index.js';
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

/** Above this many records with one key, A's records of that key are indexed by their input-0 sources. */
const SCAN_LIMIT = 8;

/**
 * Every step is a walk over one record's links or dependents, or a map
 * lookup, so the diff grows linearly with the records and links of A and B,
 * and per-record data lives in typed arrays indexed by node index (a large
 * diff was mostly allocation: per-record arrays, Maps and key strings). A
 * record of B is looked for among the dependents in A of what its input-0
 * sources matched, not in a Map of all A's keys: at 20 000 records such a
 * Map and the key strings it compares no longer fit in the CPU's caches.
 * For the same reason A is read once, into flat arrays (CacheGraph.flatten),
 * and its records are compared from those.
 */
export function diffGraphs(a: CacheGraph, b: CacheGraph): DiffReport {
  const nodesA = a.nodes;
  const fa = a.flatten();
  const depsA = flatDependents(fa);
  const rootsA = byKey(fa, (i) => fa.groupStart[i + 1] === fa.groupStart[i]);
  // All of A's records by key, and for a key many share, its records by
  // input-0 source: built on first need, for sources with many dependents.
  let byDigestA: ByKey | undefined;
  const bySource = new Map<number, Map<number, Map<string, number[]>>>();

  const match = new Matches(b.nodes.length);
  // The records of A that B matches, each with 1 + the last record of B that matched it (for dedup).
  const matchedA = new Int32Array(nodesA.length);
  let matchedCount = 0;
  let common = 0;
  // The record of B being matched (one closure for all, not one per record).
  let n = b.nodes[0]!;
  let bi = 0;
  const consider = (ci: number, srcA: number, selector: string) => {
    if (matchedA[ci] === bi + 1 || !sameStep(n, fa, a, ci, srcA, selector, match)) return;
    if (matchedA[ci] === 0) matchedCount++;
    matchedA[ci] = bi + 1;
    match.push(bi, ci);
  };
  const matched = (x: CacheNode) => match.any(x.index);
  const transparent = (x: CacheNode) => x.links.length === 0 && !resultOf(x) && !matched(x);
  const inA = (x: CacheNode) => matched(x) || transparent(x);
  // First divergences, in the order the walk finishes them, and their depths.
  const diverged: CacheNode[] = [];
  const divergedDepth: number[] = [];

  sourcesFirst(b.nodes, (node, depth) => {
    n = node;
    bi = n.index;
    match.begin(bi);
    if (n.links.length === 0) {
      const g = rootsA.group.get(n.digest);
      if (g !== undefined) {
        for (let k = rootsA.start[g]!; k < rootsA.start[g + 1]!; k++) {
          const ci = rootsA.members[k]!;
          if (matchedA[ci] === 0) matchedCount++;
          matchedA[ci] = bi + 1;
          match.push(bi, ci);
        }
      }
    } else {
      const first = n.links[0]!;
      for (let j = 0; j < first.size; j++) {
        const s = first.srcAt(j).index;
        const selector = first.selectorAt(j);
        for (let k = match.from[s]!; k < match.to[s]!; k++) {
          const srcA = match.pool[k]!;
          const lo = depsA.start[srcA]!;
          const hi = depsA.start[srcA + 1]!;
          if (hi - lo <= SCAN_LIMIT) {
            for (let p = lo; p < hi; p++) consider(depsA.list[p]!, srcA, selector);
            continue;
          }
          // A source many records link from: A's records with n's key, by source where many share it.
          byDigestA ??= byKey(fa, () => true);
          const g = byDigestA.group.get(n.digest);
          if (g === undefined) continue;
          const from = byDigestA.start[g]!;
          const to = byDigestA.start[g + 1]!;
          if (to - from <= SCAN_LIMIT) {
            for (let p = from; p < to; p++) consider(byDigestA.members[p]!, srcA, selector);
            continue;
          }
          let idx = bySource.get(g);
          if (!idx) bySource.set(g, (idx = indexBySource(nodesA, byDigestA.members.subarray(from, to))));
          for (const ci of idx.get(srcA)?.get(selector) ?? []) consider(ci, srcA, selector);
        }
      }
    }
    if (match.any(bi)) common++;
    // Not in A, though every input is.
    else if (!transparent(n) && n.links.every((m) => someLink(m, inA))) {
      diverged.push(n);
      divergedDepth.push(depth);
    }
  });

  // A's records with the key of a divergence, in one pass over A.
  const sameKey = new Map<string, number[]>();
  for (const x of diverged) sameKey.set(x.digest, []);
  if (sameKey.size > 0 && sameKey.size <= SCAN_LIMIT) {
    // Few keys: compared directly, which reads a key only as far as it differs (no hash of every key of A).
    const keys = [...sameKey.keys()];
    const lists = [...sameKey.values()];
    for (let i = 0; i < fa.size; i++) {
      const d = fa.digest[i]!;
      for (let k = 0; k < keys.length; k++) if (d === keys[k]) lists[k]!.push(i);
    }
  } else if (sameKey.size > 0) {
    for (let i = 0; i < fa.size; i++) sameKey.get(fa.digest[i]!)?.push(i);
  }
  const divergences: Divergence[] = [];
  for (let i = 0; i < diverged.length; i++) {
    const x = diverged[i]!;
    const res = resultOf(x);
    const div: Divergence = {
      record: x.digest,
      depth: divergedDepth[i]!,
      layers: (res?.layers ?? []).map((l) => ({ digest: l.digest, size: l.size })),
    };
    const description = res ? describeLayers(res.layers) : undefined;
    if (description) div.description = description;
    const replaced = likelyReplaced(x, a, depsA, match, matchedA, sameKey.get(x.digest)!);
    if (replaced) div.replaces = replaced;
    divergences.push(div);
  }
  divergences.sort((x, y) => x.depth - y.depth || (x.record < y.record ? -1 : x.record > y.record ? 1 : 0));
  return { common, onlyA: nodesA.length - matchedCount, onlyB: b.nodes.length - common, divergences };
}

/**
 * Records (indexes into `nodes`) by each of their input-0 links: source
 * index, then selector. By source alone, records that share a key and a
 * source but differ in selector (a step run over many files) were all
 * candidates for each other: 50 000 of them took 2.5 billion comparisons.
 */
function indexBySource(nodes: readonly CacheNode[], members: Int32Array): Map<number, Map<string, number[]>> {
  const idx = new Map<number, Map<string, number[]>>();
  for (const ci of members) {
    for (const l of nodes[ci]!.links[0]?.all ?? []) {
      let bySelector = idx.get(l.src.index);
      if (!bySelector) idx.set(l.src.index, (bySelector = new Map()));
      const list = bySelector.get(l.selector);
      if (list) list.push(ci);
      else bySelector.set(l.selector, [ci]);
    }
  }
  return idx;
}

/**
 * A's record `c` (read from `fa`) has the key and inputs of B's `n`, and
 * links from `srcA` (a match of n's input-0 source) through input 0 with
 * `selector`.
 */
function sameStep(n: CacheNode, fa: FlatGraph, a: CacheGraph, c: number, srcA: number, selector: string, match: Matches): boolean {
  const g0 = fa.groupStart[c]!;
  if (fa.groupStart[c + 1]! - g0 !== n.links.length || fa.digest[c] !== n.digest) return false;
  const from = fa.linkStart[g0]!;
  const to = fa.linkStart[g0 + 1]!;
  if (to - from > SCAN_LIMIT) {
    // A large input: its group's index answers without a scan.
    if (!a.nodes[c]!.links[0]!.has(a.nodes[srcA]!, selector)) return false;
  } else {
    let found = false;
    for (let l = from; l < to && !found; l++) found = fa.src[l] === srcA && fa.selector[l] === selector;
    if (!found) return false;
  }
  // Inputs 1..: each has a link that c has too, with an equal selector and a matching source.
  for (let i = 1; i < n.links.length; i++) if (!inputMatches(n.links[i]!, fa, g0 + i, match)) return false;
  return true;
}

function someLink(m: Links, test: (src: CacheNode) => boolean): boolean {
  for (let i = 0; i < m.size; i++) if (test(m.srcAt(i))) return true;
  return false;
}


/** Some link of `bl` (B) has a link in A's input group `g` (of `fa`) with an equal selector and a matching source. */
function inputMatches(bl: Links, fa: FlatGraph, g: number, match: Matches): boolean {
  for (let j = 0; j < bl.size; j++) {
    const s = bl.srcAt(j).index;
    if (!match.any(s)) continue;
    const selector = bl.selectorAt(j);
    for (let l = fa.linkStart[g]!; l < fa.linkStart[g + 1]!; l++) if (fa.selector[l] === selector && match.has(s, fa.src[l]!)) return true;
  }
  return false;
}

/**
 * The record of A that `n` most likely took the place of: among A's records
 * with the same key, or linked from a source `n` shares with A, the one whose
 * key, input count, selectors and sources agree most; records of A that B
 * still matches elsewhere come last.
 */
function likelyReplaced(
  n: CacheNode,
  a: CacheGraph,
  deps: Dependents,
  match: Matches,
  matchedA: Int32Array,
  sameKey: readonly number[],
): Divergence['replaces'] {
  const candidates = new Set<number>(sameKey);
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
      for (const l of compared(m.all)) {
        for (const x of compared(cl.all)) {
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

/**
 * Links of one input that likelyReplaced and differences weigh against each
 * other: every pair is compared, so an input of 50 000 links on both sides
 * (a hostile or generated cache) meant 2.5 billion pairs and as many
 * allocated in differences(). Real inputs hold a few links; past this many
 * the first ones are the evidence.
 */
const LINKS_COMPARED = 64;

function compared<T>(links: readonly T[]): readonly T[] {
  return links.length > LINKS_COMPARED ? links.slice(0, LINKS_COMPARED) : links;
}

/** What differs between A's record `c` and B's record `n`: key, input count, and per input the selector or the source. */
function differences(c: CacheNode, n: CacheNode, match: Matches): Difference[] {
  const out: Difference[] = [];
  if (c.digest !== n.digest) out.push({ what: 'key', a: c.digest, b: n.digest });
  if (c.links.length !== n.links.length) out.push({ what: 'inputs', a: c.links.length, b: n.links.length });
  const inputs = Math.min(c.links.length, n.links.length);
  for (let i = 0; i < inputs; i++) {
    const bl = compared(n.links[i]!.all);
    const al = compared(c.links[i]!.all);
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
