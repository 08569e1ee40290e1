// The solver-side cache graph ("chains"), BuildKit's CacheExporterTarget:
// records keyed by cache-key digest, linked by input index and selector, each
// with at most one result (a chain of layer descriptors). See
// cache/remotecache/v1/chains.go in BuildKit for the model this follows.
import { invalidArgument } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { canonicalGoTime, GO_ZERO_TIME } from '../oci/go-json.js';
import { parseDigest } from '../oci/digest.js';
import { marshalGraph, type MarshalResult } from './marshal.js';

export interface Link {
  src: CacheNode;
  selector: string;
}

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
  /** Per input index, links keyed by source uid and selector. */
  links: Map<string, Link>[] = [];
  readonly backlinks = new Set<CacheNode>();
  result?: NodeResult;
  hint?: Hint;

  constructor(
    readonly graph: CacheGraph,
    readonly digest: string,
  ) {}

  /** Declares that input `index` of this record can be computed from `src` (through `selector`). */
  linkFrom(src: RecordHandle, index: number, selector = ''): void {
    if (!(src instanceof CacheNode)) return; // links from discarded (random:) records are dropped, as BuildKit does
    if (src.graph !== this.graph) throw invalidArgument('cannot link records of different cache graphs');
    if (!Number.isSafeInteger(index) || index < 0) throw invalidArgument(`invalid input index ${index}`);
    while (this.links.length <= index) this.links.push(new Map());
    this.links[index]!.set(linkKey(src, selector), { src, selector });
    src.backlinks.add(this);
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

/** A record that is not kept: BuildKit drops keys that start with "random:". */
export class DiscardedRecord {
  linkFrom(): void {}
  addResult(): void {}
}

export type RecordHandle = CacheNode | DiscardedRecord;

export function linkKey(src: CacheNode, selector: string): string {
  return `${src.uid}\u0000${selector}`;
}

export class CacheGraph {
  /** Records in the order they were added; normalization gives earlier ones precedence. */
  readonly nodes: CacheNode[] = [];
  /** Source order of decoded layer chains, keyed by chain key (see chainKey in marshal.ts). */
  readonly layerHints = new Map<string, Hint>();
  private sources = 0;

  /** Adds a record for a cache key. Every call makes a new record; equal keys merge at marshal time. */
  add(digest: string): RecordHandle {
    if (digest.startsWith('random:')) return new DiscardedRecord();
    // A cache key is a digest, whoever built the graph (a solver, the wire, a parsed config).
    parseDigest(digest);
    const node = new CacheNode(this, digest);
    this.nodes.push(node);
    return node;
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
