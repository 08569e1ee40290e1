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
import type { CacheNode, Hint, Link, NodeResult } from './graph.js';

export interface NormNode {
  /** Position in creation order; the merge target among several matches is the oldest. */
  readonly seq: number;
  readonly digest: string;
  links: Map<string, NormLink>[];
  readonly result?: NodeResult;
  readonly hint?: Hint;
}

export interface NormLink {
  src: NormNode;
  selector: string;
}

function normKey(src: NormNode, selector: string): string {
  return `${src.seq}\u0000${selector}`;
}

/** Marks records unreachable by the importer: some input index without a (valid) link. */
function findInvalid(nodes: CacheNode[]): Set<CacheNode> {
  const invalid = new Set<CacheNode>();
  const counts = new Map<CacheNode, number[]>();
  const queue: CacheNode[] = [];
  for (const n of nodes) {
    const c = n.links.map((m) => m.size);
    counts.set(n, c);
    if (c.some((x) => x === 0)) {
      invalid.add(n);
      queue.push(n);
    }
  }
  while (queue.length) {
    const bad = queue.pop()!;
    for (const bl of bad.backlinks) {
      if (invalid.has(bl)) continue;
      const c = counts.get(bl);
      if (!c) continue; // a record of another generation of this graph
      bl.links.forEach((m, i) => {
        for (const l of m.values()) if (l.src === bad) c[i]!--;
      });
      if (c.some((x) => x === 0)) {
        invalid.add(bl);
        queue.push(bl);
      }
    }
  }
  return invalid;
}

export function normalize(nodes: CacheNode[]): NormNode[] {
  const invalid = findInvalid(nodes);
  const added = new Map<CacheNode, NormNode>();
  const byKey = new Map<string, NormNode>();
  // For each normalized source: "<dependent digest>\0<input>\0<selector>" -> keys of dependents.
  const nlinks = new Map<NormNode, Map<string, Set<string>>>();
  const out: NormNode[] = [];
  let seq = 0;

  const liveLinks = (n: CacheNode): Link[][] => n.links.map((m) => [...m.values()].filter((l) => !invalid.has(l.src)));

  const create = (n: CacheNode, inputs: number): NormNode => {
    const nn: NormNode = { seq: seq++, digest: n.digest, links: [], result: n.result, hint: n.hint };
    for (let i = 0; i < inputs; i++) nn.links.push(new Map());
    out.push(nn);
    return nn;
  };

  const process = (it: CacheNode, links: Link[][]): void => {
    if (links.length === 0) {
      const existing = byKey.get(it.digest);
      if (existing) {
        added.set(it, existing);
        return;
      }
      const nn = create(it, 0);
      byKey.set(it.digest, nn);
      added.set(it, nn);
      return;
    }
    // Find an already-normalized record reached through the same links:
    // any link of input 0, and every link of every later input.
    let matches: Set<string> | undefined;
    links.forEach((group, i) => {
      for (const l of group) {
        const ids = nlinks.get(added.get(l.src)!)?.get(`${it.digest}\u0000${i}\u0000${l.selector}`);
        if (i === 0) {
          matches ??= new Set();
          if (ids) for (const id of ids) matches.add(id);
        } else if (matches) {
          for (const id of matches) if (!ids?.has(id)) matches.delete(id);
        }
      }
    });
    let id: string;
    let target: NormNode;
    if (matches && matches.size > 0) {
      id = [...matches].reduce((a, b) => (Number(a.slice(1)) <= Number(b.slice(1)) ? a : b));
      target = byKey.get(id)!;
    } else {
      target = create(it, links.length);
      id = `#${target.seq}`;
      byKey.set(id, target);
    }
    added.set(it, target);
    links.forEach((group, i) => {
      while (target.links.length <= i) target.links.push(new Map());
      for (const l of group) {
        const sub = added.get(l.src)!;
        target.links[i]!.set(normKey(sub, l.selector), { src: sub, selector: l.selector });
        let bySrc = nlinks.get(sub);
        if (!bySrc) nlinks.set(sub, (bySrc = new Map()));
        const k = `${it.digest}\u0000${i}\u0000${l.selector}`;
        let ids = bySrc.get(k);
        if (!ids) bySrc.set(k, (ids = new Set()));
        ids.add(id);
      }
    });
  };

  // Post-order walk: every source is normalized before the records that link from it.
  interface Frame {
    node: CacheNode;
    links: Link[][];
    i: number;
    j: number;
  }
  const onStack = new Set<CacheNode>();
  for (const start of nodes) {
    if (invalid.has(start) || added.has(start)) continue;
    const stack: Frame[] = [{ node: start, links: liveLinks(start), i: 0, j: 0 }];
    onStack.add(start);
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      let pending: CacheNode | undefined;
      while (f.i < f.links.length) {
        const group = f.links[f.i]!;
        if (f.j < group.length) {
          const src = group[f.j++]!.src;
          if (!added.has(src)) {
            pending = src;
            break;
          }
        } else {
          f.i++;
          f.j = 0;
        }
      }
      if (pending) {
        if (onStack.has(pending)) {
          throw invalidArgument(`invalid looping record: ${pending.digest} links to itself through its inputs`, {
            reason: 'looping-record',
          });
        }
        onStack.add(pending);
        stack.push({ node: pending, links: liveLinks(pending), i: 0, j: 0 });
        continue;
      }
      process(f.node, f.links);
      onStack.delete(f.node);
      stack.pop();
    }
  }

  removeLoops(out, nlinks, byKey);
  return out;
}

/** Cuts back edges found by a depth-first walk from the roots along dependents. */
function removeLoops(out: NormNode[], nlinks: Map<NormNode, Map<string, Set<string>>>, byKey: Map<string, NormNode>): void {
  const GRAY = 1;
  const BLACK = 2;
  const color = new Map<NormNode, number>();
  interface Frame {
    node: NormNode;
    edges: [Set<string>, string][];
    pos: number;
  }
  const edgesOf = (n: NormNode): [Set<string>, string][] => {
    const res: [Set<string>, string][] = [];
    for (const ids of nlinks.get(n)?.values() ?? []) for (const id of ids) res.push([ids, id]);
    return res;
  };
  for (const root of out) {
    if (root.links.length !== 0 || color.has(root)) continue;
    const stack: Frame[] = [{ node: root, edges: edgesOf(root), pos: 0 }];
    color.set(root, GRAY);
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      if (f.pos >= f.edges.length) {
        color.set(f.node, BLACK);
        stack.pop();
        continue;
      }
      const [ids, id] = f.edges[f.pos++]!;
      const dep = byKey.get(id);
      if (!dep || !ids.has(id)) continue;
      const c = color.get(dep);
      if (c === GRAY) {
        removeLink(dep, f.node);
        ids.delete(id);
      } else if (c === undefined) {
        color.set(dep, GRAY);
        stack.push({ node: dep, edges: edgesOf(dep), pos: 0 });
      }
    }
  }
}

/** BuildKit's item.removeLink: drop links from `src`; an emptied input leaves no inputs at all. */
function removeLink(n: NormNode, src: NormNode): void {
  for (const m of n.links) for (const [k, l] of m) if (l.src === src) m.delete(k);
  if (n.links.some((m) => m.size === 0)) n.links = [];
}
