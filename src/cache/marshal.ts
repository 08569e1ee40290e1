// Marshal a normalized graph to a cache config with BuildKit's ordering
// (cache/remotecache/v1/utils.go sortConfig), made deterministic:
//  - layers sort by blob; BuildKit then compares pre-sort parent indexes, which
//    depend on map order, so equal blobs under different parents come out in
//    any order. We order those by source position when the chain was decoded
//    (so decoding then encoding is a fixed point), else by the parent chain.
//  - records sort by digest and inputs as BuildKit does, with each input group
//    compared in a canonical order, and exact ties broken by source position,
//    then by a structural hash of the record.
import { createHash } from 'node:crypto';
import type { Descriptor } from '../oci/descriptor.js';
import type { CacheConfig } from './config.js';
import { FlatConfig } from './flat-config.js';
import type { CacheGraph, Hint } from './graph.js';
import type { NormGraph } from './norm-graph.js';
import { normalize } from './normalize.js';
import { prefixKeys } from './sort-keys.js';

/** The empty gzip layer BuildKit leaves out of cache chains (exptypes.EmptyGZLayer). */
export const EMPTY_GZ_LAYER = 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1';

export interface MarshalResult {
  /** The config in flat arrays: what an export encodes (FlatConfig.encode) and counts. */
  flat: FlatConfig;
  /** The config as objects, built on first use (nothing on the export path asks for them). */
  readonly config: CacheConfig;
  /** Descriptor of every blob the config names, keyed by digest. */
  descriptors: Map<string, Descriptor>;
}

/**
 * Keys of every prefix of a layer chain, base first, skipping the empty layer
 * as BuildKit's marshalRemote does. Equal keys are the same cache layer.
 */
export function chainKeys(layers: readonly { digest: string }[]): string[] {
  const keys: string[] = [];
  let parent = '';
  for (const l of layers) {
    if (l.digest === EMPTY_GZ_LAYER) {
      keys.push(parent);
      continue;
    }
    parent = parent ? `${parent}>${l.digest}` : l.digest;
    keys.push(parent);
  }
  return keys;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpHint(a: Hint | undefined, b: Hint | undefined): number {
  if (a && b) return a[0] - b[0] || a[1] - b[1];
  if (a) return -1;
  if (b) return 1;
  return 0;
}

interface LayerEntry {
  blob: string;
  parent: number;
  /** Where the chain up to this layer was decoded from, if it was. */
  hint: Hint | undefined;
  /** Layers from this one down to the base (its lineage's length; the lineage itself is walked through `parent`). */
  depth: number;
  newIndex: number;
  /** prefixKeys() of blob. */
  sortKey: number;
}

/**
 * A class, not an object literal with a getter: a getter closing over
 * marshalGraph's scope kept that whole scope (the normalized graph, the layer
 * table) alive with the result, and V8 then moved the scope's allocations
 * straight to the old generation (measured: young collections 8x as long).
 */
class Marshalled implements MarshalResult {
  private objects: CacheConfig | undefined;

  constructor(
    readonly flat: FlatConfig,
    readonly descriptors: Map<string, Descriptor>,
  ) {}

  get config(): CacheConfig {
    return (this.objects ??= this.flat.toConfig());
  }
}

export function marshalGraph(graph: CacheGraph): MarshalResult {
  const g = normalize(graph);
  const descriptors = new Map<string, Descriptor>();
  const layers: LayerEntry[] = [];
  const layerByKey = new Map<string, number>();
  const hints = graph.hintsView;

  // Chain keys as chainKeys() makes them, one prefix at a time.
  const marshalResult = (descs: Descriptor[]): number => {
    let parent = -1;
    let key = '';
    for (let i = 0; i < descs.length; i++) {
      const d = descs[i]!;
      if (d.digest === EMPTY_GZ_LAYER) continue;
      key = key ? `${key}>${d.digest}` : d.digest;
      if (!descriptors.has(d.digest)) descriptors.set(d.digest, d);
      let idx = layerByKey.get(key);
      if (idx === undefined) {
        idx = layers.length;
        const depth = parent === -1 ? 1 : layers[parent]!.depth + 1;
        layers.push({ blob: d.digest, parent, hint: hints.size ? hints.get(key) : undefined, depth, newIndex: -1, sortKey: 0 });
        layerByKey.set(key, idx);
      }
      parent = idx;
    }
    return parent;
  };

  // Each record's result layer (-1: none).
  const resultLayer = new Int32Array(g.size).fill(-1);
  for (let i = 0; i < g.size; i++) {
    const res = g.result[i];
    if (res) resultLayer[i] = marshalResult(res.layers);
  }

  // ---- layers ----
  const layerKeys = prefixKeys(layers.length, (i) => layers[i]!.blob);
  for (let i = 0; i < layers.length; i++) layers[i]!.sortKey = layerKeys[i]!;
  const sortedLayers = [...layers].sort((a, b) => {
    // -1 or 1, not the difference: a comparator returning a double allocates a heap number per call.
    if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
    const c = cmpStr(a.blob, b.blob);
    if (c !== 0) return c;
    const h = cmpHint(a.hint, b.hint);
    if (h !== 0) return h;
    // Then by the blobs below, nearest first, and the shorter chain first.
    for (let pa = a.parent, pb = b.parent; pa !== -1 && pb !== -1; pa = layers[pa]!.parent, pb = layers[pb]!.parent) {
      const x = cmpStr(layers[pa]!.blob, layers[pb]!.blob);
      if (x !== 0) return x;
    }
    return a.depth - b.depth;
  });
  sortedLayers.forEach((l, i) => (l.newIndex = i));
  const layerBlob = new Array<string>(sortedLayers.length);
  const layerParent = new Int32Array(sortedLayers.length);
  for (let i = 0; i < sortedLayers.length; i++) {
    const l = sortedLayers[i]!;
    layerBlob[i] = l.blob;
    layerParent[i] = l.parent === -1 ? -1 : layers[l.parent]!.newIndex;
  }

  // ---- records ----
  // Structural keys and canonical input orders are only needed to order
  // records BuildKit's comparison leaves tied (equal digests), so they are
  // computed on first use. A canonical input lists its links (indexes into
  // g's link arrays) by selector, source key, then source structure.
  const structKey = structuralKeys(g);
  const canonical = (grp: number): readonly number[] => {
    const ls = groupLinks(g, grp);
    return ls.length < 2
      ? ls
      : ls.sort(
          (x, y) =>
            cmpStr(g.selector[x]!, g.selector[y]!) ||
            cmpStr(g.digest[g.src[x]!]!, g.digest[g.src[y]!]!) ||
            cmpStr(structKey(g.src[x]!), structKey(g.src[y]!)),
        );
  };
  const canonInputs: (readonly (readonly number[])[] | undefined)[] = new Array(g.size);
  const canon = (r: number) => {
    let c = canonInputs[r];
    if (!c) {
      const groups: (readonly number[])[] = [];
      for (let k = 0; k < g.inputs[r]!; k++) groups.push(canonical(g.firstGroup[r]! + k));
      canonInputs[r] = c = groups;
    }
    return c;
  };
  const order = new Array<number>(g.size);
  for (let i = 0; i < g.size; i++) order[i] = i;
  const digestKeys = prefixKeys(g.size, (i) => g.digest[i]!);
  order.sort((i, j) => {
    if (digestKeys[i] !== digestKeys[j]) return digestKeys[i]! < digestKeys[j]! ? -1 : 1;
    const di = g.digest[i]!;
    const dj = g.digest[j]!;
    if (di !== dj) return cmpStr(di, dj);
    const ii = canon(i);
    const ij = canon(j);
    if (ii.length !== ij.length) return ii.length - ij.length;
    for (let k = 0; k < ii.length; k++) {
      const a = ii[k]!;
      const b = ij[k]!;
      if (a.length !== b.length) return a.length - b.length;
      for (let m = 0; m < a.length; m++) {
        const sa = g.selector[a[m]!]!;
        const sb = g.selector[b[m]!]!;
        if (sa !== sb) return cmpStr(sa, sb);
        const da = g.digest[g.src[a[m]!]!]!;
        const db = g.digest[g.src[b[m]!]!]!;
        if (da !== db) return cmpStr(da, db);
      }
    }
    return cmpHint(g.hint[i], g.hint[j]) || cmpStr(structKey(i), structKey(j)) || i - j;
  });
  const newRecordIndex = new Int32Array(g.size);
  for (let i = 0; i < g.size; i++) newRecordIndex[order[i]!] = i;
  // The records in their new order, straight into the flat arrays FlatConfig encodes.
  let groupCount = 0;
  let linkCount = 0;
  // Counted along the lists the loop below follows, so the typed arrays hold every link it writes.
  for (let i = 0; i < g.size; i++) {
    for (let k = 0; k < g.inputs[i]!; k++) for (let l = g.head[g.firstGroup[i]! + k]!; l !== -1; l = g.next[l]!) linkCount++;
    groupCount += g.inputs[i]!;
  }
  const digest = new Array<string>(g.size);
  const outResult = new Int32Array(g.size);
  const createdAt = new Array<string>(g.size);
  const groupStart = new Int32Array(g.size + 1);
  const linkStart = new Int32Array(groupCount + 1);
  const link = new Int32Array(linkCount);
  const selector = new Array<string>(linkCount);
  let grpOut = 0;
  let linkOut = 0;
  for (let r = 0; r < g.size; r++) {
    const old = order[r]!;
    groupStart[r] = grpOut;
    for (let k = 0; k < g.inputs[old]!; k++) {
      const grp = g.firstGroup[old]! + k;
      linkStart[grpOut++] = linkOut;
      const from = linkOut;
      for (let l = g.head[grp]!; l !== -1; l = g.next[l]!) {
        link[linkOut] = newRecordIndex[g.src[l]!]!;
        selector[linkOut++] = g.selector[l]!;
      }
      if (linkOut - from > 1) sortGroup(link, selector, from, linkOut);
    }
    const layer = resultLayer[old]!;
    digest[r] = g.digest[old]!;
    outResult[r] = layer === -1 ? -1 : layers[layer]!.newIndex;
    createdAt[r] = layer === -1 ? '' : g.result[old]!.createdAt;
  }
  groupStart[g.size] = grpOut;
  linkStart[grpOut] = linkOut;

  const flat = new FlatConfig({ layerBlob, layerParent, digest, resultLayer: outResult, createdAt, groupStart, linkStart, link, selector });
  return new Marshalled(flat, descriptors);
}

/** Orders one group's links (link[from..to-1], with their selectors) by link, then selector, as BuildKit's sortConfig does. */
function sortGroup(link: Int32Array, selector: string[], from: number, to: number): void {
  const idx: number[] = [];
  for (let i = from; i < to; i++) idx.push(i);
  idx.sort((x, y) => link[x]! - link[y]! || cmpStr(selector[x]!, selector[y]!));
  const links = idx.map((i) => link[i]!);
  const sels = idx.map((i) => selector[i]!);
  for (let i = 0; i < links.length; i++) {
    link[from + i] = links[i]!;
    selector[from + i] = sels[i]!;
  }
}

/** The links of group `grp`, in order (a new array). */
function groupLinks(g: NormGraph, grp: number): number[] {
  const out = new Array<number>(g.count[grp]!);
  let m = 0;
  for (let l = g.head[grp]!; l !== -1; l = g.next[l]!) out[m++] = l;
  return out;
}

/**
 * A hash of each record's whole upstream structure (digest, inputs with
 * selectors, result), computed sources-first without recursion. Only used to
 * order records that BuildKit's comparison leaves tied, so each is computed
 * on first use with its upstream. A normalized graph has no loops; should a
 * walk meet one, every key is computed in one pass in record order, where a
 * source still in progress contributes a fixed marker, so the keys never
 * depend on which were asked for first.
 */
function structuralKeys(g: NormGraph): (i: number) => string {
  let keys = new Array<string | undefined>(g.size);
  let looped = false;
  const state = new Uint8Array(g.size); // 0 new, 1 in progress, 2 done
  const keyOf = (i: number): string => {
    const h = createHash('sha256').update(g.digest[i]!);
    for (let k = 0; k < g.inputs[i]!; k++) {
      // A source still in progress is a loop; it contributes a fixed marker.
      const parts = groupLinks(g, g.firstGroup[i]! + k)
        .map((l) => `${g.selector[l]}\u0000${state[g.src[l]!] === 2 ? keys[g.src[l]!] : 'loop'}`)
        .sort();
      h.update(`\u0001${parts.join('\u0002')}`);
    }
    const res = g.result[i];
    if (res) h.update(`\u0003${res.createdAt}\u0003${res.layers.map((l) => l.digest).join('>')}`);
    return h.digest('hex');
  };
  /** Computes the keys of `start` and its upstream; false if it met a loop (unless `loops` allows). */
  const walk = (start: number, loops: boolean): boolean => {
    const stack: number[] = [start];
    while (stack.length) {
      const i = stack[stack.length - 1]!;
      if (state[i] === 0) {
        state[i] = 1;
        for (let k = 0; k < g.inputs[i]!; k++) {
          for (let l = g.head[g.firstGroup[i]! + k]!; l !== -1; l = g.next[l]!) {
            const s = state[g.src[l]!];
            if (s === 0) stack.push(g.src[l]!);
            else if (s === 1 && !loops) return false;
          }
        }
        continue;
      }
      stack.pop();
      if (state[i] === 2) continue;
      keys[i] = keyOf(i);
      state[i] = 2;
    }
    return true;
  };
  return (i) => {
    if (state[i] !== 2 && !looped && !walk(i, false)) {
      looped = true;
      keys = new Array<string | undefined>(g.size);
      state.fill(0);
      for (let start = 0; start < g.size; start++) if (state[start] !== 2) walk(start, true);
    }
    return keys[i]!;
  };
}
