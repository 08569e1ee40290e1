// Normalization of a cache graph before marshalling, with BuildKit's rules
// (cache/remotecache/v1/chains.go normalize, utils.go normalizeItem/removeLoops):
//  1. records with an input index that has no link are unreachable and dropped,
//     transitively;
//  2. equal keys merge: roots by digest, linked records when they have the same
//     digest and are reached through the same (normalized) links; the record
//     normalized first keeps its result;
//  3. loops created by merging are cut.
// BuildKit walks every path when it cuts loops, which is exponential on graphs
// with cross links; here every step is iterative and near-linear, and the input
// graph is never mutated, so marshalling twice gives the same bytes.
import { invalidArgument } from '../errors.js';
import type { CacheGraph, FlatGraph } from './graph.js';
import { Edges, NormGraph } from './norm-graph.js';

/**
 * Marks records unreachable by the importer: some input index without a
 * (valid) link. Counts live links per input in one typed array and finds
 * dependents through links sorted by source (a counting sort), so a large
 * graph costs a few arrays, not a Map and an array per record.
 */
function findInvalid(f: FlatGraph): Uint8Array {
  const n = f.size;
  const groups = f.groupStart[n]!;
  const invalid = new Uint8Array(n);
  // How many valid links each input still has.
  const live = new Int32Array(groups);
  // Links sorted by source: the input each counts in, and its record.
  const bySrc = new Int32Array(n + 1);
  const links = f.linkStart[groups]!;
  for (let l = 0; l < links; l++) bySrc[f.src[l]! + 1]!++;
  for (let i = 0; i < n; i++) bySrc[i + 1]! += bySrc[i]!;
  const fill = bySrc.slice(0, n);
  const inputOf = new Int32Array(links);
  const depOf = new Int32Array(links);
  const queue = new Int32Array(n);
  let q = 0;
  for (let i = 0; i < n; i++) {
    let bad = false;
    for (let g = f.groupStart[i]!; g < f.groupStart[i + 1]!; g++) {
      live[g] = f.linkStart[g + 1]! - f.linkStart[g]!;
      if (live[g] === 0) bad = true;
      for (let l = f.linkStart[g]!; l < f.linkStart[g + 1]!; l++) {
        const p = fill[f.src[l]!]!++;
        inputOf[p] = g;
        depOf[p] = i;
      }
    }
    if (bad) {
      invalid[i] = 1;
      queue[q++] = i;
    }
  }
  while (q > 0) {
    const bad = queue[--q]!;
    for (let p = bySrc[bad]!; p < bySrc[bad + 1]!; p++) {
      const d = depOf[p]!;
      if (invalid[d]) continue;
      if (--live[inputOf[p]!]! === 0) {
        invalid[d] = 1;
        queue[q++] = d;
      }
    }
  }
  return invalid;
}

/**
 * Normalizes a graph's records. The graph is read once, into flat arrays
 * (CacheGraph.flatten), and every later step reads those.
 */
export function normalize(graph: CacheGraph): NormGraph {
  const f = graph.flatten();
  const n = f.size;
  const invalid = findInvalid(f);
  const out = new NormGraph(n, f.groupStart[n]!, f.linkStart[f.groupStart[n]!]!);
  // The normalized record each record went to (-1: not yet).
  const added = new Int32Array(n).fill(-1);
  const rootByDigest = new Map<string, number>();
  const edges = new Edges(n, f.linkStart[f.groupStart[n]!]!);
  // Merge candidates of the record being processed (reused), and a stamp per normalized record to list each once.
  const cand: number[] = [];
  const stamp = new Int32Array(n);
  let stampNow = 0;

  const process = (it: number): void => {
    const g0 = f.groupStart[it]!;
    const inputs = f.groupStart[it + 1]! - g0;
    const digest = f.digest[it]!;
    if (inputs === 0) {
      let r = rootByDigest.get(digest);
      if (r === undefined) rootByDigest.set(digest, (r = out.addRecord(digest, f.result[it], f.hint[it], 0)));
      added[it] = r;
      return;
    }
    // Find an already-normalized record reached through the same links:
    // any link of input 0, and every link of every later input.
    cand.length = 0;
    stampNow++;
    for (let i = 0; i < inputs; i++) {
      for (let l = f.linkStart[g0 + i]!; l < f.linkStart[g0 + i + 1]!; l++) {
        const src = f.src[l]!;
        if (invalid[src]) continue;
        const e = edges.find(added[src]!, digest, i, f.selector[l]!);
        if (i === 0) {
          if (e === -1) continue;
          for (let x = edges.firstId[e]!; x !== -1; x = edges.nextId[x]!) {
            const id = edges.id[x]!;
            if (stamp[id] === stampNow) continue;
            stamp[id] = stampNow;
            cand.push(id);
          }
        } else {
          let w = 0;
          for (let k = 0; k < cand.length; k++) if (edges.has(e, cand[k]!)) cand[w++] = cand[k]!;
          cand.length = w;
        }
      }
    }
    let target: number;
    if (cand.length > 0) {
      target = cand[0]!;
      for (let k = 1; k < cand.length; k++) if (cand[k]! < target) target = cand[k]!;
    } else {
      target = out.addRecord(digest, f.result[it], f.hint[it], inputs);
    }
    added[it] = target;
    // A merge target has every input `it` has (the match required a link at each).
    for (let i = 0; i < inputs; i++) {
      const g = out.firstGroup[target]! + i;
      for (let l = f.linkStart[g0 + i]!; l < f.linkStart[g0 + i + 1]!; l++) {
        const src = f.src[l]!;
        if (invalid[src]) continue;
        const sub = added[src]!;
        out.addLink(g, sub, f.selector[l]!);
        edges.add(sub, digest, i, f.selector[l]!, target);
      }
    }
  };

  // Post-order walk: every source is normalized before the records that
  // link from it. A frame is a record and the next of its links to look at
  // (its links are consecutive in f, input by input), in typed arrays.
  const onStack = new Uint8Array(n);
  const stackNode = new Int32Array(n);
  const stackLink = new Int32Array(n);
  for (let start = 0; start < n; start++) {
    if (invalid[start] || added[start] !== -1) continue;
    let sp = 0;
    stackNode[sp] = start;
    stackLink[sp++] = f.linkStart[f.groupStart[start]!]!;
    onStack[start] = 1;
    while (sp > 0) {
      const top = sp - 1;
      const node = stackNode[top]!;
      const end = f.linkStart[f.groupStart[node + 1]!]!;
      let pending = -1;
      while (stackLink[top]! < end) {
        const src = f.src[stackLink[top]!++]!;
        if (!invalid[src] && added[src] === -1) {
          pending = src;
          break;
        }
      }
      if (pending !== -1) {
        if (onStack[pending]) {
          throw invalidArgument(`invalid looping record: ${f.digest[pending]} links to itself through its inputs`, {
            reason: 'looping-record',
          });
        }
        onStack[pending] = 1;
        stackNode[sp] = pending;
        stackLink[sp++] = f.linkStart[f.groupStart[pending]!]!;
        continue;
      }
      process(node);
      onStack[node] = 0;
      sp--;
    }
  }

  removeLoops(out, edges);
  return out;
}
/**
 * Cuts back edges found by a depth-first walk from the roots along
 * dependents. (A cut edge stays in the edge lists: the walk reads each
 * source's edges once, while that source is on the stack, so no later step
 * could see it.)
 */
function removeLoops(out: NormGraph, edges: Edges): void {
  const GRAY = 1;
  const BLACK = 2;
  const color = new Uint8Array(out.size);
  // A frame: a record, and its next edge and dependent entry to look at (-1: start the next edge).
  const stackNode = new Int32Array(out.size);
  const stackEdge = new Int32Array(out.size);
  const stackId = new Int32Array(out.size);
  for (let root = 0; root < out.size; root++) {
    if (out.inputs[root] !== 0 || color[root]) continue;
    let sp = 0;
    stackNode[sp] = root;
    stackEdge[sp] = edges.first[root]!;
    stackId[sp++] = -1;
    color[root] = GRAY;
    while (sp > 0) {
      const f = sp - 1;
      const e = stackEdge[f]!;
      if (e === -1) {
        color[stackNode[f]!] = BLACK;
        sp--;
        continue;
      }
      const x = stackId[f] === -1 ? edges.firstId[e]! : edges.nextId[stackId[f]!]!;
      if (x === -1) {
        stackEdge[f] = edges.nextEdge[e]!;
        stackId[f] = -1;
        continue;
      }
      stackId[f] = x;
      const id = edges.id[x]!;
      const c = color[id];
      if (c === GRAY) {
        out.removeLinksFrom(id, stackNode[f]!);
      } else if (c === 0) {
        color[id] = GRAY;
        stackNode[sp] = id;
        stackEdge[sp] = edges.first[id]!;
        stackId[sp++] = -1;
      }
    }
  }
}
