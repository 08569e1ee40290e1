// The data normalize() builds and marshal reads: the normalized graph, and
// the index of dependents that merging and cutting loops use, in flat typed
// arrays (see normalize.ts for the rules).
import type { Hint, NodeResult } from './graph.js';

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
  addRecord(digest: string, result: NodeResult | undefined, hint: Hint | undefined, inputs: number): number {
    const r = this.size++;
    this.digest[r] = digest;
    this.result[r] = result;
    this.hint[r] = hint;
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
export class Edges {
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
