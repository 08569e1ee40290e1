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
import type { CacheNode, Hint, NodeResult } from './graph.js';

/** Above this many entries a list is indexed instead of scanned. */
const SCAN_LIMIT = 8;

/**
 * A normalized graph in flat arrays: records by index (creation order), each
 * with a fixed number of inputs (groups), each group a linked list of links
 * (a source record and a selector) in the order first added. The sizes of
 * the typed arrays are bounds known before normalizing (the input graph's
 * records, inputs and links), so a large graph costs a few arrays off the
 * JavaScript heap rather than objects per record and link that the garbage
 * collector must copy while they live.
 */
export class NormGraph {
  /** Number of records. */
  size = 0;
  readonly digest: string[];
  readonly result: (NodeResult | undefined)[];
  readonly hint: (Hint | undefined)[];
  /** Record r's inputs are groups firstGroup[r] .. firstGroup[r] + inputs[r] - 1 (inputs[r] is 0 once a cut emptied one). */
  readonly firstGroup: Int32Array;
  readonly inputs: Int32Array;
  /** Per group: its first and last link (-1: none) and how many it has. */
  readonly head: Int32Array;
  readonly tail: Int32Array;
  readonly count: Int32Array;
  /** Per link: its source record, selector and the next link of its group (-1: the last). */
  readonly src: Int32Array;
  readonly selector: string[];
  readonly next: Int32Array;
  private groups = 0;
  private links = 0;
  /** For groups with more than SCAN_LIMIT links: link by "source\0selector". */
  private readonly indexed = new Map<number, Map<string, number>>();

  constructor(records: number, groups: number, links: number) {
    this.digest = new Array<string>(records);
    this.result = new Array<NodeResult | undefined>(records);
    this.hint = new Array<Hint | undefined>(records);
    this.firstGroup = new Int32Array(records);
    this.inputs = new Int32Array(records);
    this.head = new Int32Array(groups);
    this.tail = new Int32Array(groups);
    this.count = new Int32Array(groups);
    this.src = new Int32Array(links);
    this.selector = new Array<string>(links);
    this.next = new Int32Array(links);
  }

  /** Adds a record with `inputs` empty inputs; returns its index. */
  addRecord(n: CacheNode, inputs: number): number {
    const r = this.size++;
    this.digest[r] = n.digest;
    this.result[r] = n.result;
    this.hint[r] = n.hint;
    this.firstGroup[r] = this.groups;
    this.inputs[r] = inputs;
    for (let g = this.groups; g < this.groups + inputs; g++) this.head[g] = this.tail[g] = -1;
    this.groups += inputs;
    return r;
  }

  /** Adds a link from `src` with `selector` to group `g` unless it has one. */
  addLink(g: number, src: number, selector: string): void {
    const idx = this.indexed.get(g);
    if (idx) {
      if (idx.has(`${src}\u0000${selector}`)) return;
    } else {
      for (let l = this.head[g]!; l !== -1; l = this.next[l]!) if (this.src[l] === src && this.selector[l] === selector) return;
    }
    const l = this.links++;
    this.src[l] = src;
    this.selector[l] = selector;
    this.next[l] = -1;
    if (this.head[g] === -1) this.head[g] = l;
    else this.next[this.tail[g]!] = l;
    this.tail[g] = l;
    this.count[g]!++;
    if (idx) idx.set(`${src}\u0000${selector}`, l);
    else if (this.count[g]! > SCAN_LIMIT) {
      const m = new Map<string, number>();
      for (let x = this.head[g]!; x !== -1; x = this.next[x]!) m.set(`${this.src[x]}\u0000${this.selector[x]}`, x);
      this.indexed.set(g, m);
    }
  }

  /**
   * BuildKit's item.removeLink: drop r's links from `src`; an emptied input
   * leaves no inputs at all. (Only after every link is added: the index of
   * large groups is not updated.)
   */
  removeLinksFrom(r: number, src: number): void {
    let emptied = false;
    for (let g = this.firstGroup[r]!; g < this.firstGroup[r]! + this.inputs[r]!; g++) {
      let prev = -1;
      for (let l = this.head[g]!; l !== -1; l = this.next[l]!) {
        if (this.src[l] !== src) {
          prev = l;
          continue;
        }
        if (prev === -1) this.head[g] = this.next[l]!;
        else this.next[prev] = this.next[l]!;
        if (this.tail[g] === l) this.tail[g] = prev;
        this.count[g]!--;
      }
      if (this.count[g] === 0) emptied = true;
    }
    if (emptied) this.inputs[r] = 0;
  }
}

/**
 * The records normalized so far that link from one normalized source with
 * one (dependent key, input, selector): BuildKit's "same links" test for
 * merging, and the dependents edges that cutting loops walks, in the order
 * first linked. Flat like NormGraph: per source a list of edges, per edge a
 * list of dependents (record indexes); each link of the input graph adds at
 * most one edge and one dependent, which bounds the arrays.
 */
class Edges {
  /** Per source record: its first and last edge (-1: none) and how many. */
  readonly first: Int32Array;
  private readonly last: Int32Array;
  private readonly edgeCount: Int32Array;
  /** Per edge: key, input, selector, next edge of its source, first and last dependent. */
  private readonly digest: string[];
  private readonly input: Int32Array;
  private readonly selector: string[];
  readonly nextEdge: Int32Array;
  readonly firstId: Int32Array;
  private readonly lastId: Int32Array;
  private readonly idCount: Int32Array;
  /** Per dependent entry: the record, and the next entry of its edge. */
  readonly id: Int32Array;
  readonly nextId: Int32Array;
  private edges = 0;
  private ids = 0;
  /** Sources with more than SCAN_LIMIT edges: edge by key; edges with more than SCAN_LIMIT dependents: their set. */
  private readonly edgeIndex = new Map<number, Map<string, number>>();
  private readonly idIndex = new Map<number, Set<number>>();

  constructor(records: number, links: number) {
    this.first = new Int32Array(records).fill(-1);
    this.last = new Int32Array(records);
    this.edgeCount = new Int32Array(records);
    this.digest = new Array<string>(links);
    this.input = new Int32Array(links);
    this.selector = new Array<string>(links);
    this.nextEdge = new Int32Array(links);
    this.firstId = new Int32Array(links);
    this.lastId = new Int32Array(links);
    this.idCount = new Int32Array(links);
    this.id = new Int32Array(links);
    this.nextId = new Int32Array(links);
  }

  /** The edge of `src` for (digest, input, selector), or -1. */
  find(src: number, digest: string, input: number, selector: string): number {
    if (this.edgeCount[src]! > SCAN_LIMIT) return this.edgeIndex.get(src)!.get(edgeKey(digest, input, selector)) ?? -1;
    for (let e = this.first[src]!; e !== -1; e = this.nextEdge[e]!) {
      if (this.input[e] === input && this.digest[e] === digest && this.selector[e] === selector) return e;
    }
    return -1;
  }

  has(e: number, id: number): boolean {
    if (e === -1) return false;
    const set = this.idIndex.get(e);
    if (set) return set.has(id);
    for (let x = this.firstId[e]!; x !== -1; x = this.nextId[x]!) if (this.id[x] === id) return true;
    return false;
  }

  add(src: number, digest: string, input: number, selector: string, id: number): void {
    let e = this.find(src, digest, input, selector);
    if (e === -1) {
      e = this.edges++;
      this.digest[e] = digest;
      this.input[e] = input;
      this.selector[e] = selector;
      this.nextEdge[e] = -1;
      this.firstId[e] = -1;
      this.idCount[e] = 0;
      if (this.first[src] === -1) this.first[src] = e;
      else this.nextEdge[this.last[src]!] = e;
      this.last[src] = e;
      const n = ++this.edgeCount[src]!;
      if (n > SCAN_LIMIT) {
        let idx = this.edgeIndex.get(src);
        if (!idx) {
          this.edgeIndex.set(src, (idx = new Map()));
          for (let x = this.first[src]!; x !== -1; x = this.nextEdge[x]!) idx.set(edgeKey(this.digest[x]!, this.input[x]!, this.selector[x]!), x);
        } else idx.set(edgeKey(digest, input, selector), e);
      }
    } else if (this.has(e, id)) return;
    const x = this.ids++;
    this.id[x] = id;
    this.nextId[x] = -1;
    if (this.firstId[e] === -1) this.firstId[e] = x;
    else this.nextId[this.lastId[e]!] = x;
    this.lastId[e] = x;
    const n = ++this.idCount[e]!;
    const set = this.idIndex.get(e);
    if (set) set.add(id);
    else if (n > SCAN_LIMIT) {
      const s = new Set<number>();
      for (let y = this.firstId[e]!; y !== -1; y = this.nextId[y]!) s.add(this.id[y]!);
      this.idIndex.set(e, s);
    }
  }
}

const edgeKey = (digest: string, input: number, selector: string) => `${digest}\u0000${input}\u0000${selector}`;

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
      const all = links[k]!.all;
      for (let j = 0; j < all.length; j++) bySrc[all[j]!.src.index + 1]!++;
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
      const all = links[k]!.all;
      live[first[i]! + k] = all.length;
      if (all.length === 0) bad = true;
      for (let j = 0; j < all.length; j++) {
        const p = fill[all[j]!.src.index]!++;
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
      const all = links[i]!.all;
      for (let j = 0; j < all.length; j++) {
        const l = all[j]!;
        if (invalid[l.src.index]) continue;
        const e = edges.find(added[l.src.index]!, it.digest, i, l.selector);
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
      const all = links[i]!.all;
      for (let j = 0; j < all.length; j++) {
        const l = all[j]!;
        if (invalid[l.src.index]) continue;
        const sub = added[l.src.index]!;
        out.addLink(g, sub, l.selector);
        edges.add(sub, it.digest, i, l.selector, target);
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
        const group = node.links[stackInput[f]!]!.all;
        if (stackLink[f]! < group.length) {
          const src = group[stackLink[f]!++]!.src;
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
