// One input's links of a record: the alternatives the input can be computed
// from, each a source and a selector, without repeats, in the order first
// added. Most groups hold one link, so a group is a small array of exactly
// its links, scanned to refuse repeats; the graph's own loops read sources
// and selectors by position (srcAt, selectorAt). A group that grows large (a part
// of a wire graph may put 130 000 links in one) gets an index, so adding
// stays O(1) per link. This replaces a Map keyed by a "source\0selector"
// string per link: at tens of thousands of records those Maps, strings and
// objects outlived the young generation and made the garbage collector most
// of a large graph's cost, and each one more pointer to follow.
import type { CacheNode, Link } from './graph.js';

/** Above this many links a group keeps an index instead of being scanned. */
const SCAN_LIMIT = 8;

/** The list of every group until its first link (never modified). */
const NONE: Link[] = Object.freeze<Link[]>([]) as Link[];

export class LinkGroup implements Iterable<Link> {
  // A new group's list is allocated with its first link, as [link]: a push
  // onto an empty array reserves room for 16, several times what a group of
  // one link needs, and a large graph has one group per input of each record.
  // (Link objects are made as links are added, next to their group: making
  // them later, on demand, scattered them over the heap, and a walk over a
  // large graph's links then missed the CPU's caches more.)
  private list: Link[] = NONE;
  private index: Map<string, Link> | undefined = undefined;

  get size(): number {
    return this.list.length;
  }

  /** Source of link `i` (0 <= i < size). */
  srcAt(i: number): CacheNode {
    return this.list[i]!.src;
  }

  /** Selector of link `i` (0 <= i < size). */
  selectorAt(i: number): string {
    return this.list[i]!.selector;
  }

  /** The links in the order first added (a view; do not modify). */
  get all(): readonly Link[] {
    return this.list;
  }

  values(): IterableIterator<Link> {
    return this.list.values();
  }

  [Symbol.iterator](): IterableIterator<Link> {
    return this.list.values();
  }

  has(src: CacheNode, selector: string): boolean {
    if (this.index) return this.index.has(key(src, selector));
    const list = this.list;
    for (let i = 0; i < list.length; i++) if (list[i]!.src === src && list[i]!.selector === selector) return true;
    return false;
  }

  /** Adds a link unless one with this source and selector is there; returns whether it was added. */
  add(src: CacheNode, selector: string): boolean {
    if (this.has(src, selector)) return false;
    const link: Link = { src, selector };
    if (this.list === NONE) this.list = [link];
    else this.list.push(link);
    if (this.index) this.index.set(key(src, selector), link);
    else if (this.list.length > SCAN_LIMIT) {
      this.index = new Map();
      for (const l of this.list) this.index.set(key(l.src, l.selector), l);
    }
    return true;
  }
}

function key(src: CacheNode, selector: string): string {
  return `${src.index}\u0000${selector}`;
}
