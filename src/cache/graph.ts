// The solver-side cache graph ("chains"), BuildKit's CacheExporterTarget:
// records keyed by cache-key digest, linked by input index and selector, each
// with at most one result (a chain of layer descriptors). See
// cache/remotecache/v1/chains.go in BuildKit for the model this follows.
import { invalidArgument } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { canonicalGoTime, GO_ZERO_TIME } from '../oci/go-json.js';
import { parseDigest } from '../oci/digest.js';
import { LinkGroup } from './link-group.js';
import { marshalGraph, type MarshalResult } from './marshal.js';

export interface Link {
  src: CacheNode;
  selector: string;
}

/** One input's links: `size`, `values()`, iteration, `all`, `has(src, selector)`, and `srcAt`/`selectorAt` for indexed loops. */
export type Links = LinkGroup;

export interface NodeResult {
  createdAt: string;
  /** Layer chain, base first. */
  layers: Descriptor[];
}

/** Where a record or layer came from when it was decoded; orders ties like the source did. */
export type Hint = readonly [source: number, index: number];

let nextUid = 0;

export class CacheNode {
  readonly uid = nextUid++;
  /** Per input index, the links (distinct source and selector pairs) in the order first added. */
  links: Links[] = [];
  hint?: Hint;
  private res: NodeResult | undefined = undefined;
  /** Whether the graph lists this record among those with results. */
  private listed = false;

  constructor(
    readonly graph: CacheGraph,
    readonly digest: string,
    /**
     * Position in graph.nodes (records are never removed), so per-record
     * data of a large graph can live in arrays indexed by it rather than in
     * Maps keyed by node.
     */
    readonly index: number,
  ) {}

  /** The record's result (see addResult); setting one also lists the record in graph.recordsWithResults(). */
  get result(): NodeResult | undefined {
    return this.res;
  }

  set result(r: NodeResult | undefined) {
    if (r && !this.listed) {
      this.listed = true;
      this.graph.resultAdded(this);
    }
    this.res = r;
  }

  /** The records that link from this one, each once, in graph order: a scan of the graph's links per call. */
  get backlinks(): readonly CacheNode[] {
    return this.graph.nodes.filter((d) => d.links.some((g) => g.all.some((l) => l.src === this)));
  }

  /** Declares that input `index` of this record can be computed from `src` (through `selector`). */
  linkFrom(src: RecordHandle, index: number, selector = ''): void {
    if (!(src instanceof CacheNode)) return; // links from discarded (random:) records are dropped, as BuildKit does
    if (src.graph !== this.graph) throw invalidArgument('cannot link records of different cache graphs');
    if (!Number.isSafeInteger(index) || index < 0) throw invalidArgument(`invalid input index ${index}`);
    // Grown to exactly index + 1 groups (a push onto [] reserves 16 slots; most records have one or two inputs).
    if (this.links.length <= index) {
      this.graph.inputsAdded(index + 1 - this.links.length);
      this.links = grown(this.links, index + 1);
    }
    if (this.links[index]!.add(src, selector)) this.graph.linkAdded();
  }

  /**
   * Sets the record's result. As in BuildKit, a record keeps one result and
   * the last call wins. `createdAt` is an RFC 3339 string or a Date.
   */
  addResult(createdAt: string | Date, layers: Descriptor[]): void {
    const t =
      createdAt instanceof Date
        ? canonicalGoTime(createdAt.toISOString())
        : createdAt === ''
          ? GO_ZERO_TIME
          : canonicalGoTime(createdAt);
    for (const l of layers) parseDigest(l.digest);
    this.result = { createdAt: t, layers: layers.map((l) => ({ ...l })) };
  }
}

/** See CacheGraph.flatten. */
export interface FlatGraph {
  size: number;
  digest: string[];
  result: (NodeResult | undefined)[];
  hint: (Hint | undefined)[];
  /** Record i's inputs are groups groupStart[i] .. groupStart[i+1]-1. */
  groupStart: Int32Array;
  /** Group g's links are linkStart[g] .. linkStart[g+1]-1: source src[l] (a record index), selector selector[l]. */
  linkStart: Int32Array;
  src: Int32Array;
  selector: string[];
}

function growInt32(a: Int32Array<ArrayBuffer>, atLeast: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(Math.max(atLeast, a.length * 2));
  b.set(a);
  return b;
}

/**
 * The records that link from each record, each once and in graph order:
 * those of record i are list[start[i]] .. list[start[i+1]-1] (record indexes).
 */
export interface Dependents {
  readonly start: Int32Array;
  readonly list: Int32Array;
}

/** The dependents of each record of a flat graph, from its arrays alone, in one pass over its links. */
export function flatDependents(f: FlatGraph): Dependents {
  const n = f.size;
  const start = new Int32Array(n + 1);
  // last[s] = 1 + the last record found linking from s, so a record that links from s twice counts once.
  const last = new Int32Array(n);
  const count = (visit: (s: number, d: number) => void) => {
    last.fill(0);
    for (let d = 0; d < n; d++) {
      for (let l = f.linkStart[f.groupStart[d]!]!; l < f.linkStart[f.groupStart[d + 1]!]!; l++) {
        const s = f.src[l]!;
        if (last[s] === d + 1) continue;
        last[s] = d + 1;
        visit(s, d);
      }
    }
  };
  count((s) => start[s + 1]!++);
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const list = new Int32Array(start[n]!);
  const fill = start.slice(0, n);
  count((s, d) => (list[fill[s]!++] = d));
  return { start, list };
}

/** `groups` followed by empty groups up to `length`, in an array of exactly that length. */
function grown(groups: Links[], length: number): Links[] {
  const out = new Array<Links>(length);
  for (let i = 0; i < length; i++) out[i] = groups[i] ?? new LinkGroup();
  return out;
}

/** A record that is not kept: BuildKit drops keys that start with "random:". */
export class DiscardedRecord {
  linkFrom(): void {}
  addResult(): void {}
}

export type RecordHandle = CacheNode | DiscardedRecord;

export class CacheGraph {
  private readonly list: CacheNode[] = [];
  /** Flat arrays the records are still to be made from (see fromFlat), until something asks for them as objects. */
  private pending: FlatGraph | undefined = undefined;
  /** Source order of decoded layer chains (see layerHints); shared with a graph cut from this one until either adds to it. */
  private hints = new Map<string, Hint>();
  private hintsShared = false;
  private sources = 0;
  private links = 0;
  private inputs = 0;
  /** Records that were given a result, and whether that list is in graph order. */
  private withResults: CacheNode[] = [];
  private withResultsInOrder = true;

  /**
   * A graph of the records `flat` describes (keys, hints and links as they
   * are; results as given, so pass copies). Its records are made only when
   * something asks for them: marshalling reads the arrays, so a subgraph that
   * is only written out (trim's kept part) never makes an object per record
   * and link. `flat` is the graph's own from then on: do not modify it.
   */
  static fromFlat(flat: FlatGraph, hintsOf: CacheGraph, sources: number): CacheGraph {
    const g = new CacheGraph();
    // The hints (an entry per decoded chain prefix, tens of thousands in a large cache) are shared, not copied:
    // copying them was 5% of planning a trim of 20 000 records and 9% of what it allocated. Whichever graph adds
    // to them first copies them then.
    g.hints = hintsOf.hints;
    g.hintsShared = hintsOf.hintsShared = true;
    g.reserveSources(sources);
    g.pending = flat;
    return g;
  }

  /**
   * Source order of decoded layer chains, keyed by chain key (see chainKeys
   * in marshal.ts), to add to. Get it for each change rather than keeping it:
   * a map shared with another graph is copied here first.
   */
  get layerHints(): Map<string, Hint> {
    if (this.hintsShared) {
      this.hints = new Map(this.hints);
      this.hintsShared = false;
    }
    return this.hints;
  }

  /** The layer hints, to read (never copies). */
  get hintsView(): ReadonlyMap<string, Hint> {
    return this.hints;
  }

  /** Records in the order they were added; normalization gives earlier ones precedence. */
  get nodes(): readonly CacheNode[] {
    if (this.pending) this.materialize();
    return this.list;
  }

  /** Makes the records and links of a graph made by fromFlat. */
  private materialize(): void {
    const f = this.pending!;
    this.pending = undefined;
    for (let i = 0; i < f.size; i++) {
      const c = this.addCopy(f.digest[i]!, f.hint[i]);
      const res = f.result[i];
      if (res) c.result = res;
    }
    for (let i = 0; i < f.size; i++) {
      const c = this.list[i]!;
      for (let g = f.groupStart[i]!; g < f.groupStart[i + 1]!; g++) {
        for (let l = f.linkStart[g]!; l < f.linkStart[g + 1]!; l++) c.linkFrom(this.list[f.src[l]!]!, g - f.groupStart[i]!, f.selector[l]!);
      }
    }
  }

  /** Adds a record for a cache key. Every call makes a new record; equal keys merge at marshal time. */
  add(digest: string): RecordHandle {
    if (digest.startsWith('random:')) return new DiscardedRecord();
    // A cache key is a digest, whoever built the graph (a solver, the wire, a parsed config).
    parseDigest(digest);
    const nodes = this.nodes as CacheNode[];
    const node = new CacheNode(this, digest, nodes.length);
    nodes.push(node);
    return node;
  }

  /**
   * A record with the key and source hint of a record of another graph: its
   * key was checked when that record was added, so copying a large graph
   * does not validate every key again.
   */
  addCopy(digest: string, hint: Hint | undefined): CacheNode {
    const nodes = this.nodes as CacheNode[];
    const node = new CacheNode(this, digest, nodes.length);
    node.hint = hint;
    nodes.push(node);
    return node;
  }

  /** Called by CacheNode when it is first given a result. */
  resultAdded(node: CacheNode): void {
    const last = this.withResults[this.withResults.length - 1];
    if (last && last.index > node.index) this.withResultsInOrder = false;
    this.withResults.push(node);
  }

  /**
   * The records that were given a result (it may since have been cleared or
   * name no layer: see resultOf), in graph order: what tools that only care
   * about results walk instead of every record of a large graph.
   */
  recordsWithResults(): readonly CacheNode[] {
    if (this.pending) this.materialize();
    if (!this.withResultsInOrder) {
      this.withResults.sort((a, b) => a.index - b.index);
      this.withResultsInOrder = true;
    }
    return this.withResults;
  }

  /** Called by CacheNode.linkFrom when a link is added. */
  linkAdded(): void {
    this.links++;
  }

  /** Called by CacheNode.linkFrom when a record gains inputs. */
  inputsAdded(n: number): void {
    this.inputs += n;
  }

  /**
   * The records' keys, results and links in flat arrays, made by one pass
   * over the records (each call makes new ones, but a graph from fromFlat
   * not yet asked for its records returns its own: only read them). Work that reads a large
   * graph several times reads these instead of following each record's
   * objects again: at tens of thousands of records those no longer fit in
   * the CPU's caches and every read of one is a miss.
   */
  flatten(): FlatGraph {
    // A graph made by fromFlat and not yet asked for its records: the arrays it was made from.
    if (this.pending) return this.pending;
    const n = this.nodes.length;
    const digest = new Array<string>(n);
    const result = new Array<NodeResult | undefined>(n);
    const hint = new Array<Hint | undefined>(n);
    const groupStart = new Int32Array(n + 1);
    // Sized by the counts linkFrom keeps, grown should a caller have replaced a record's links.
    let linkStart = new Int32Array(this.inputs + 1);
    let src = new Int32Array(this.links);
    const selector = new Array<string>(this.links);
    let groups = 0;
    let links = 0;
    for (let i = 0; i < n; i++) {
      const node = this.nodes[i]!;
      digest[i] = node.digest;
      result[i] = node.result;
      hint[i] = node.hint;
      const ls = node.links;
      for (let k = 0; k < ls.length; k++) {
        const g = ls[k]!;
        if (groups + 2 > linkStart.length) linkStart = growInt32(linkStart, groups + 2);
        linkStart[groups++] = links;
        if (links + g.size > src.length) src = growInt32(src, links + g.size);
        for (let j = 0; j < g.size; j++) {
          src[links] = g.srcAt(j).index;
          selector[links++] = g.selectorAt(j);
        }
      }
      groupStart[i + 1] = groups;
    }
    linkStart[groups] = links;
    return { size: n, digest, result, hint, groupStart, linkStart, src, selector };
  }

  /** Allocates a source number for hints; decoded sources are ordered by it. */
  newSource(): number {
    return this.sources++;
  }

  /** Makes the next newSource() return at least `n` (hinted sources 0..n-1 exist); O(1) whatever `n` is. */
  reserveSources(n: number): void {
    if (n > this.sources) this.sources = n;
  }

  /** Normalizes, then marshals to a config plus the descriptor of every layer blob. */
  marshal(): MarshalResult {
    return marshalGraph(this);
  }
}
