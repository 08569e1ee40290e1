// One input's links of a record: the alternatives the input can be computed
// from, each a source and a selector, without repeats, in the order first
// added. Most groups hold one or two links, so a group is a small array that
// is scanned; a group that grows large (a part of a wire graph may put
// 130 000 links in one) gets an index, so adding stays O(1) per link. This
// replaces a Map keyed by a "source\0selector" string per link: at tens of
// thousands of records those Maps and strings outlived the young generation
// and made the garbage collector most of a large graph's cost.

/** What a link's source must have: its position in its graph (CacheNode.index, NormNode.index). */
export interface Indexed {
  readonly index: number;
}

export interface LinkTo<N> {
  src: N;
  selector: string;
}

/** Above this many links a group keeps an index instead of being scanned. */
const SCAN_LIMIT = 8;

/** The list of every group until its first link (never modified). */
const NONE: unknown[] = Object.freeze<unknown[]>([]) as unknown[];

export class LinkGroup<N extends Indexed, L extends LinkTo<N> = LinkTo<N>> implements Iterable<L> {
  // A new group's list is allocated with its first link, as [link]: a push
  // onto an empty array reserves room for 16, several times what a group of
  // one link needs, and a large graph has one group per input of each record.
  private list: L[] = NONE as L[];
  private index?: Map<string, L>;

  get size(): number {
    return this.list.length;
  }

  /** The links in the order first added (a view; do not modify). */
  get all(): readonly L[] {
    return this.list;
  }

  values(): IterableIterator<L> {
    return this.list.values();
  }

  [Symbol.iterator](): IterableIterator<L> {
    return this.list.values();
  }

  find(src: N, selector: string): L | undefined {
    if (this.index) return this.index.get(key(src, selector));
    // Indexed loops here and in the hot loops of normalize, marshal and the
    // lifecycle tools: for-of allocated an iterator result per step there.
    const list = this.list;
    for (let i = 0; i < list.length; i++) if (list[i]!.src === src && list[i]!.selector === selector) return list[i];
    return undefined;
  }

  has(src: N, selector: string): boolean {
    return this.find(src, selector) !== undefined;
  }

  /** Adds `link` unless a link with its source and selector is there; returns whether it was added. */
  add(link: L): boolean {
    if (this.find(link.src, link.selector)) return false;
    if ((this.list as unknown[]) === NONE) this.list = [link];
    else this.list.push(link);
    if (this.index) this.index.set(key(link.src, link.selector), link);
    else if (this.list.length > SCAN_LIMIT) {
      this.index = new Map();
      for (const l of this.list) this.index.set(key(l.src, l.selector), l);
    }
    return true;
  }

  /** Removes every link from `src`. */
  deleteFrom(src: N): void {
    if ((this.list as unknown[]) === NONE) return;
    let w = 0;
    for (const l of this.list) {
      if (l.src === src) this.index?.delete(key(l.src, l.selector));
      else this.list[w++] = l;
    }
    this.list.length = w;
  }
}

function key(src: Indexed, selector: string): string {
  return `${src.index}\u0000${selector}`;
}
