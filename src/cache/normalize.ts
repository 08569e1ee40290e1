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
import { LinkGroup } from './link-group.js';

export interface NormNode {
  /** Position in creation order (and in normalize's output); the merge target among several matches is the oldest. */
  readonly index: number;
  readonly digest: string;
  links: LinkGroup<NormNode, NormLink>[];
  readonly result?: NodeResult;
  readonly hint?: Hint;
}

export interface NormLink {
  src: NormNode;
  selector: string;
}

/**
 * The records normalized so far that link from one normalized source with
 * one (dependent key, input, selector): BuildKit's "same links" test for
 * merging, and the dependents edges that cutting loops walks, in the order
 * first linked. Indexed by plain arrays and, only for sources with many
 * dependents, by a string key, so a large graph allocates a few small
 * objects per link rather than key strings and Sets.
 */
interface Edge {
  readonly digest: string;
  readonly input: number;
  readonly selector: string;
  /** Indexes of the dependents, in the order first linked. */
  readonly ids: number[];
  /** Index of `ids` once it is long enough that scanning it would be quadratic. */
  idSet?: Set<number>;
}

/** Above this many entries an edge list or id list is indexed instead of scanned. */
const SCAN_LIMIT = 8;

const edgeKey = (digest: string, input: number, selector: string) => `${digest}\u0000${input}\u0000${selector}`;

class Edges {
  /** Per normalized source (by index): its edges in creation order. */
  readonly bySource: (Edge[] | undefined)[];
  /** For sources with more than SCAN_LIMIT edges: the edges by key. */
  private readonly indexed = new Map<number, Map<string, Edge>>();

  /** `records`: at least the number of normalized records there will be (sources are filled in any order). */
  constructor(records: number) {
    this.bySource = new Array<Edge[] | undefined>(records).fill(undefined);
  }

  find(src: number, digest: string, input: number, selector: string): Edge | undefined {
    const list = this.bySource[src];
    if (!list) return undefined;
    if (list.length > SCAN_LIMIT) return this.indexed.get(src)!.get(edgeKey(digest, input, selector));
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.input === input && e.digest === digest && e.selector === selector) return e;
    }
    return undefined;
  }

  add(src: number, digest: string, input: number, selector: string, id: number): void {
    const e = this.find(src, digest, input, selector);
    if (e) {
      if (hasId(e, id)) return;
      e.ids.push(id);
      if (e.idSet) e.idSet.add(id);
      else if (e.ids.length > SCAN_LIMIT) e.idSet = new Set(e.ids);
      return;
    }
    const created: Edge = { digest, input, selector, ids: [id] };
    const list = this.bySource[src];
    if (!list) {
      this.bySource[src] = [created];
      return;
    }
    list.push(created);
    if (list.length <= SCAN_LIMIT) return;
    const idx = this.indexed.get(src);
    if (idx) idx.set(edgeKey(digest, input, selector), created);
    else this.indexed.set(src, new Map(list.map((x) => [edgeKey(x.digest, x.input, x.selector), x])));
  }
}

function hasId(e: Edge | undefined, id: number): boolean {
  if (!e) return false;
  if (e.idSet) return e.idSet.has(id);
  const ids = e.ids;
  for (let i = 0; i < ids.length; i++) if (ids[i] === id) return true;
  return false;
}

/**
 * Marks records unreachable by the importer: some input index without a
 * (valid) link. Counts live links per input in one typed array and finds
 * dependents through links sorted by source (a counting sort), so a large
 * graph costs a few arrays, not a Map and an array per record.
 */
function findInvalid(nodes: readonly CacheNode[]): Uint8Array {
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
  return invalid;
}

/** Normalizes a graph's records (`graph.nodes`: each node's index is its position). */
export function normalize(nodes: readonly CacheNode[]): NormNode[] {
  nodes.forEach((n, i) => {
    if (n.index !== i) throw new Error('normalize: nodes must be a graph\'s nodes, in order');
  });
  const n = nodes.length;
  const invalid = findInvalid(nodes);
  // The normalized record each record went to (-1: not yet).
  const added = new Int32Array(n).fill(-1);
  const rootByDigest = new Map<string, NormNode>();
  const edges = new Edges(n);
  const out: NormNode[] = [];
  // Merge candidates of the record being processed (reused), and a stamp per normalized record to list each once.
  const cand: number[] = [];
  const stamp = new Int32Array(n);
  let stampNow = 0;

  const create = (it: CacheNode, inputs: number): NormNode => {
    // Arrays of exactly their length here and below: a push onto [] reserves 16 slots.
    const links = new Array<LinkGroup<NormNode, NormLink>>(inputs);
    for (let i = 0; i < inputs; i++) links[i] = new LinkGroup();
    const nn: NormNode = { index: out.length, digest: it.digest, links, result: it.result, hint: it.hint };
    out.push(nn);
    return nn;
  };

  const process = (it: CacheNode): void => {
    const links = it.links;
    if (links.length === 0) {
      let nn = rootByDigest.get(it.digest);
      if (!nn) rootByDigest.set(it.digest, (nn = create(it, 0)));
      added[it.index] = nn.index;
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
          if (e) {
            for (let k = 0; k < e.ids.length; k++) {
              const id = e.ids[k]!;
              if (stamp[id] === stampNow) continue;
              stamp[id] = stampNow;
              cand.push(id);
            }
          }
        } else {
          let w = 0;
          for (let k = 0; k < cand.length; k++) if (hasId(e, cand[k]!)) cand[w++] = cand[k]!;
          cand.length = w;
        }
      }
    }
    let target: NormNode;
    if (cand.length > 0) {
      let id = cand[0]!;
      for (let k = 1; k < cand.length; k++) if (cand[k]! < id) id = cand[k]!;
      target = out[id]!;
    } else {
      target = create(it, links.length);
    }
    added[it.index] = target.index;
    for (let i = 0; i < links.length; i++) {
      while (target.links.length <= i) target.links.push(new LinkGroup());
      const group = target.links[i]!;
      const all = links[i]!.all;
      for (let j = 0; j < all.length; j++) {
        const l = all[j]!;
        if (invalid[l.src.index]) continue;
        const sub = out[added[l.src.index]!]!;
        if (!group.has(sub, l.selector)) group.add({ src: sub, selector: l.selector });
        edges.add(sub.index, it.digest, i, l.selector, target.index);
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
  for (const start of nodes) {
    if (invalid[start.index] || added[start.index] !== -1) continue;
    let sp = 0;
    stackNode[sp] = start.index;
    stackInput[sp] = 0;
    stackLink[sp++] = 0;
    onStack[start.index] = 1;
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
 * dependents. (Cutting an edge also happens to leave its id in the edge
 * list: the walk reads each source's edges once, while that source is on
 * the stack, so no later step could see it.)
 */
function removeLoops(out: NormNode[], edges: Edges): void {
  const GRAY = 1;
  const BLACK = 2;
  const color = new Uint8Array(out.length);
  const stackNode = new Int32Array(out.length);
  const stackEdge = new Int32Array(out.length);
  const stackId = new Int32Array(out.length);
  for (const root of out) {
    if (root.links.length !== 0 || color[root.index]) continue;
    let sp = 0;
    stackNode[sp] = root.index;
    stackEdge[sp] = 0;
    stackId[sp++] = 0;
    color[root.index] = GRAY;
    while (sp > 0) {
      const f = sp - 1;
      const list = edges.bySource[stackNode[f]!];
      if (!list || stackEdge[f]! >= list.length) {
        color[stackNode[f]!] = BLACK;
        sp--;
        continue;
      }
      const ids = list[stackEdge[f]!]!.ids;
      if (stackId[f]! >= ids.length) {
        stackEdge[f]!++;
        stackId[f] = 0;
        continue;
      }
      const id = ids[stackId[f]!++]!;
      const c = color[id];
      if (c === GRAY) {
        removeLink(out[id]!, out[stackNode[f]!]!);
      } else if (c === 0) {
        color[id] = GRAY;
        stackNode[sp] = id;
        stackEdge[sp] = 0;
        stackId[sp++] = 0;
      }
    }
  }
}

/** BuildKit's item.removeLink: drop links from `src`; an emptied input leaves no inputs at all. */
function removeLink(n: NormNode, src: NormNode): void {
  for (const g of n.links) g.deleteFrom(src);
  if (n.links.some((g) => g.size === 0)) n.links = [];
}
