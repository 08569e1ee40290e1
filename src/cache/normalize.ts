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
import type { CacheNode } from './graph.js';
import { Edges, NormGraph } from './norm-graph.js';

/**
 * Marks records unreachable by the importer: some input index without a
 * (valid) link. Counts live links per input in one typed array and finds
 * dependents through links sorted by source (a counting sort), so a large
 * graph costs a few arrays, not a Map and an array per record. Also returns
 * the input graph's numbers of inputs and links (bounds for NormGraph).
 */
function findInvalid(nodes: readonly CacheNode[]): { invalid: Uint8Array; inputs: number; links: number } {
  const n = nodes.length;
  const invalid = new Uint8Array(n);
  // Record i's inputs are live[first[i]] .. live[first[i+1]-1]: how many valid links each still has.
  const first = new Int32Array(n + 1);
  const bySrc = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    const links = nodes[i]!.links;
    first[i + 1] = first[i]! + links.length;
    for (let k = 0; k < links.length; k++) {
      const g = links[k]!;
      for (let j = 0; j < g.size; j++) bySrc[g.srcAt(j).index + 1]!++;
    }
  }
  for (let i = 0; i < n; i++) bySrc[i + 1]! += bySrc[i]!;
  const live = new Int32Array(first[n]!);
  // Links sorted by source: the input each counts in, and its record.
  const fill = bySrc.slice(0, n);
  const inputOf = new Int32Array(bySrc[n]!);
  const depOf = new Int32Array(bySrc[n]!);
  const queue = new Int32Array(n);
  let q = 0;
  for (let i = 0; i < n; i++) {
    const links = nodes[i]!.links;
    let bad = false;
    for (let k = 0; k < links.length; k++) {
      const g = links[k]!;
      live[first[i]! + k] = g.size;
      if (g.size === 0) bad = true;
      for (let j = 0; j < g.size; j++) {
        const p = fill[g.srcAt(j).index]!++;
        inputOf[p] = first[i]! + k;
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
  return { invalid, inputs: first[n]!, links: bySrc[n]! };
}

/** Normalizes a graph's records (`graph.nodes`: each node's index is its position). */
export function normalize(nodes: readonly CacheNode[]): NormGraph {
  for (let i = 0; i < nodes.length; i++) {
    if (nodes[i]!.index !== i) throw new Error("normalize: nodes must be a graph's nodes, in order");
  }
  const n = nodes.length;
  const { invalid, inputs, links: linkCount } = findInvalid(nodes);
  const out = new NormGraph(n, inputs, linkCount);
  // The normalized record each record went to (-1: not yet).
  const added = new Int32Array(n).fill(-1);
  const rootByDigest = new Map<string, number>();
  const edges = new Edges(n, linkCount);
  // Merge candidates of the record being processed (reused), and a stamp per normalized record to list each once.
  const cand: number[] = [];
  const stamp = new Int32Array(n);
  let stampNow = 0;

  const process = (it: CacheNode): void => {
    const links = it.links;
    if (links.length === 0) {
      let r = rootByDigest.get(it.digest);
      if (r === undefined) rootByDigest.set(it.digest, (r = out.addRecord(it, 0)));
      added[it.index] = r;
      return;
    }
    // Find an already-normalized record reached through the same links:
    // any link of input 0, and every link of every later input.
    cand.length = 0;
    stampNow++;
    for (let i = 0; i < links.length; i++) {
      const group = links[i]!;
      for (let j = 0; j < group.size; j++) {
        const src = group.srcAt(j).index;
        if (invalid[src]) continue;
        const e = edges.find(added[src]!, it.digest, i, group.selectorAt(j));
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
      target = out.addRecord(it, links.length);
    }
    added[it.index] = target;
    // A merge target has every input `it` has (the match required a link at each).
    for (let i = 0; i < links.length; i++) {
      const g = out.firstGroup[target]! + i;
      const group = links[i]!;
      for (let j = 0; j < group.size; j++) {
        const src = group.srcAt(j).index;
        if (invalid[src]) continue;
        const sub = added[src]!;
        const selector = group.selectorAt(j);
        out.addLink(g, sub, selector);
        edges.add(sub, it.digest, i, selector, target);
      }
    }
  };

  // Post-order walk: every source is normalized before the records that
  // link from it. A frame is a record and its position in its links (input,
  // then link within the input), kept in typed arrays.
  const onStack = new Uint8Array(n);
  const stackNode = new Int32Array(n);
  const stackInput = new Int32Array(n);
  const stackLink = new Int32Array(n);
  for (let start = 0; start < n; start++) {
    if (invalid[start] || added[start] !== -1) continue;
    let sp = 0;
    stackNode[sp] = start;
    stackInput[sp] = 0;
    stackLink[sp++] = 0;
    onStack[start] = 1;
    while (sp > 0) {
      const f = sp - 1;
      const node = nodes[stackNode[f]!]!;
      let pending: CacheNode | undefined;
      while (stackInput[f]! < node.links.length) {
        const group = node.links[stackInput[f]!]!;
        if (stackLink[f]! < group.size) {
          const src = group.srcAt(stackLink[f]!++);
          if (!invalid[src.index] && added[src.index] === -1) {
            pending = src;
            break;
          }
        } else {
          stackInput[f]!++;
          stackLink[f] = 0;
        }
      }
      if (pending) {
        if (onStack[pending.index]) {
          throw invalidArgument(`invalid looping record: ${pending.digest} links to itself through its inputs`, {
            reason: 'looping-record',
          });
        }
        onStack[pending.index] = 1;
        stackNode[sp] = pending.index;
        stackInput[sp] = 0;
        stackLink[sp++] = 0;
        continue;
      }
      process(node);
      onStack[node.index] = 0;
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
