// The walks and indexes diff works with: records sources first, records
// grouped by key, and what each record of B matched in A, in typed arrays
// indexed by node index rather than Maps and arrays per record.
import type { CacheNode, FlatGraph } from '../graph.js';

/**
 * Visits records sources before dependents, each with its depth (longest
 * path from a root), in one pass without recursion (parse already refused
 * loops). `nodes` are a graph's nodes, in order. Visiting a record as the
 * walk finishes it, while it and its sources are fresh in the CPU's caches,
 * costs less at tens of thousands of records than walking a list of them
 * again.
 */
export function sourcesFirst(nodes: readonly CacheNode[], visit: (n: CacheNode, depth: number) => void): void {
  const n = nodes.length;
  // -2 new, -1 while on the stack, the depth once done.
  const depth = new Int32Array(n).fill(-2);
  // A frame: a record, and the input and link within it to look at next.
  const stackNode = new Int32Array(n);
  const stackInput = new Int32Array(n);
  const stackLink = new Int32Array(n);
  for (const start of nodes) {
    if (depth[start.index] !== -2) continue;
    depth[start.index] = -1;
    let sp = 0;
    stackNode[sp] = start.index;
    stackInput[sp] = 0;
    stackLink[sp++] = 0;
    while (sp > 0) {
      const f = sp - 1;
      const node = nodes[stackNode[f]!]!;
      let next = -1;
      while (next === -1 && stackInput[f]! < node.links.length) {
        const group = node.links[stackInput[f]!]!;
        if (stackLink[f]! >= group.size) {
          stackInput[f]!++;
          stackLink[f] = 0;
          continue;
        }
        const s = group.srcAt(stackLink[f]!++).index;
        if (depth[s] === -2) next = s;
      }
      if (next !== -1) {
        depth[next] = -1;
        stackNode[sp] = next;
        stackInput[sp] = 0;
        stackLink[sp++] = 0;
        continue;
      }
      let d = 0;
      for (let k = 0; k < node.links.length; k++) {
        const g = node.links[k]!;
        for (let j = 0; j < g.size; j++) d = Math.max(d, depth[g.srcAt(j).index]! + 1);
      }
      depth[node.index] = d;
      visit(node, d);
      sp--;
    }
  }
}

/**
 * A graph's records grouped by key: those with key k are
 * members[start[g]] .. members[start[g+1]-1], in graph order, where g =
 * group.get(k). A Map from the key strings the records already hold and two
 * typed arrays, rather than an array per key.
 */
export interface ByKey {
  group: Map<string, number>;
  start: Int32Array;
  members: Int32Array;
}

/** `f`'s records that `take` accepts (by index), grouped by key. */
export function byKey(f: FlatGraph, take: (i: number) => boolean): ByKey {
  const group = new Map<string, number>();
  const groupOf = new Int32Array(f.size).fill(-1);
  const counts: number[] = [];
  for (let i = 0; i < f.size; i++) {
    if (!take(i)) continue;
    let g = group.get(f.digest[i]!);
    if (g === undefined) {
      group.set(f.digest[i]!, (g = counts.length));
      counts.push(0);
    }
    groupOf[i] = g;
    counts[g]!++;
  }
  const start = new Int32Array(counts.length + 1);
  for (let g = 0; g < counts.length; g++) start[g + 1] = start[g]! + counts[g]!;
  const fill = start.slice(0, counts.length);
  const members = new Int32Array(start[counts.length]!);
  for (let i = 0; i < f.size; i++) if (groupOf[i]! !== -1) members[fill[groupOf[i]!]!++] = i;
  return { group, start, members };
}

/**
 * What each record of B matched in A: the indexes of A's records
 * pool[from[b]] .. pool[to[b]-1] (none, usually one, more where A has equal
 * records), appended to one growing array as records are matched.
 */
export class Matches {
  pool = new Int32Array(1024);
  private used = 0;
  readonly from: Int32Array;
  readonly to: Int32Array;

  constructor(records: number) {
    this.from = new Int32Array(records);
    this.to = new Int32Array(records);
  }

  begin(b: number): void {
    this.from[b] = this.to[b] = this.used;
  }

  /** Appends a match of the record begun last. */
  push(b: number, a: number): void {
    if (this.used === this.pool.length) {
      const bigger = new Int32Array(this.pool.length * 2);
      bigger.set(this.pool);
      this.pool = bigger;
    }
    this.pool[this.used++] = a;
    this.to[b] = this.used;
  }

  any(b: number): boolean {
    return this.to[b]! > this.from[b]!;
  }

  has(b: number, a: number): boolean {
    for (let k = this.from[b]!; k < this.to[b]!; k++) if (this.pool[k] === a) return true;
    return false;
  }
}
