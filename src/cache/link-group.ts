// One input's links of a record: the alternatives the input can be computed
// from, each a source and a selector, without repeats, in the order first
// added. Most groups hold one link, so the first is kept in the group itself
// and the others in two arrays; Link objects are made only for callers that
// ask for them (`all`, `values()`, iteration), while the graph's own loops
// read sources and selectors by position. A group that grows large (a part
// of a wire graph may put 130 000 links in one) gets an index, so adding
// stays O(1) per link. This replaces a Map keyed by a "source\0selector"
// string per link: at tens of thousands of records those Maps, strings and
// objects outlived the young generation and made the garbage collector most
// of a large graph's cost, and each one more pointer to follow.
import type { CacheNode, Link } from './graph.js';

/** Above this many links a group keeps an index instead of being scanned. */
const SCAN_LIMIT = 8;

export class LinkGroup implements Iterable<Link> {
  private count = 0;
  private src0: CacheNode | undefined = undefined;
  private sel0 = '';
  /** Links 1.. (sources and selectors), once there are two. */
  private more: { src: CacheNode[]; sel: string[] } | undefined = undefined;
  /** The links as objects, made on first request and kept in step. */
  private links: Link[] | undefined = undefined;
  private index: Map<string, number> | undefined = undefined;

  get size(): number {
    return this.count;
  }

  /** Source of link `i` (0 <= i < size). */
  srcAt(i: number): CacheNode {
    return i === 0 ? this.src0! : this.more!.src[i - 1]!;
  }

  /** Selector of link `i` (0 <= i < size). */
  selectorAt(i: number): string {
    return i === 0 ? this.sel0 : this.more!.sel[i - 1]!;
  }

  /** The links in the order first added (do not modify). */
  get all(): readonly Link[] {
    if (!this.links) {
      const links = new Array<Link>(this.count);
      for (let i = 0; i < this.count; i++) links[i] = { src: this.srcAt(i), selector: this.selectorAt(i) };
      this.links = links;
    }
    return this.links;
  }

  values(): IterableIterator<Link> {
    return this.all.values();
  }

  [Symbol.iterator](): IterableIterator<Link> {
    return this.all.values();
  }

  has(src: CacheNode, selector: string): boolean {
    if (this.index) return this.index.has(key(src, selector));
    for (let i = 0; i < this.count; i++) if (this.srcAt(i) === src && this.selectorAt(i) === selector) return true;
    return false;
  }

  /** Adds a link unless one with this source and selector is there; returns whether it was added. */
  add(src: CacheNode, selector: string): boolean {
    if (this.has(src, selector)) return false;
    if (this.count === 0) {
      this.src0 = src;
      this.sel0 = selector;
    } else if (!this.more) {
      this.more = { src: [src], sel: [selector] };
    } else {
      this.more.src.push(src);
      this.more.sel.push(selector);
    }
    this.links?.push({ src, selector });
    this.count++;
    if (this.index) this.index.set(key(src, selector), this.count - 1);
    else if (this.count > SCAN_LIMIT) {
      this.index = new Map();
      for (let i = 0; i < this.count; i++) this.index.set(key(this.srcAt(i), this.selectorAt(i)), i);
    }
    return true;
  }
}

function key(src: CacheNode, selector: string): string {
  return `${src.index}\u0000${selector}`;
}
