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
import type { CacheConfig, CacheInput, CacheLayer, CacheRecord } from './config.js';
import type { CacheGraph, Hint } from './graph.js';
import { normalize, type NormNode } from './normalize.js';

/** The empty gzip layer BuildKit leaves out of cache chains (exptypes.EmptyGZLayer). */
export const EMPTY_GZ_LAYER = 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1';

export interface MarshalResult {
  config: CacheConfig;
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
  key: string;
  /** Layers from this one down to the base (its lineage's length; the lineage itself is walked through `parent`). */
  depth: number;
  newIndex: number;
}

export function marshalGraph(graph: CacheGraph): MarshalResult {
  const nodes = normalize(graph.nodes);
  const descriptors = new Map<string, Descriptor>();
  const layers: LayerEntry[] = [];
  const layerByKey = new Map<string, number>();

  const marshalResult = (descs: Descriptor[]): number => {
    const keys = chainKeys(descs);
    let parent = -1;
    let lastKey = '';
    descs.forEach((d, i) => {
      const key = keys[i]!;
      if (d.digest === EMPTY_GZ_LAYER || key === lastKey) return;
      lastKey = key;
      if (!descriptors.has(d.digest)) descriptors.set(d.digest, d);
      let idx = layerByKey.get(key);
      if (idx === undefined) {
        idx = layers.length;
        const depth = parent === -1 ? 1 : layers[parent]!.depth + 1;
        layers.push({ blob: d.digest, parent, key, depth, newIndex: -1 });
        layerByKey.set(key, idx);
      }
      parent = idx;
    });
    return parent;
  };

  const index = new Map<NormNode, number>();
  nodes.forEach((n, i) => index.set(n, i));
  const records: CacheRecord[] = nodes.map((n) => {
    const rec: CacheRecord = { results: [], chains: [], digest: n.digest, inputs: [] };
    for (const m of n.links) rec.inputs.push([...m.values()].map((l) => ({ selector: l.selector, link: index.get(l.src)! })));
    if (n.result) {
      const idx = marshalResult(n.result.layers);
      if (idx !== -1) rec.results.push({ layer: idx, createdAt: n.result.createdAt });
    }
    return rec;
  });

  // ---- layers ----
  const sortedLayers = [...layers].sort((a, b) => {
    const c = cmpStr(a.blob, b.blob);
    if (c !== 0) return c;
    const h = cmpHint(graph.layerHints.get(a.key), graph.layerHints.get(b.key));
    if (h !== 0) return h;
    // Then by the blobs below, nearest first, and the shorter chain first.
    for (let pa = a.parent, pb = b.parent; pa !== -1 && pb !== -1; pa = layers[pa]!.parent, pb = layers[pb]!.parent) {
      const x = cmpStr(layers[pa]!.blob, layers[pb]!.blob);
      if (x !== 0) return x;
    }
    return a.depth - b.depth;
  });
  sortedLayers.forEach((l, i) => (l.newIndex = i));
  const outLayers: CacheLayer[] = sortedLayers.map((l) => ({
    blob: l.blob,
    parent: l.parent === -1 ? -1 : layers[l.parent]!.newIndex,
  }));

  // ---- records ----
  const structKeys = structuralKeys(nodes, records);
  const canonical = (group: CacheInput[]): CacheInput[] =>
    [...group].sort(
      (x, y) =>
        cmpStr(x.selector, y.selector) ||
        cmpStr(records[x.link]!.digest, records[y.link]!.digest) ||
        cmpStr(structKeys[x.link]!, structKeys[y.link]!),
    );
  const canonInputs = records.map((r) => r.inputs.map(canonical));
  const order = records.map((_, i) => i);
  order.sort((i, j) => {
    const ri = records[i]!;
    const rj = records[j]!;
    if (ri.digest !== rj.digest) return cmpStr(ri.digest, rj.digest);
    const ii = canonInputs[i]!;
    const ij = canonInputs[j]!;
    if (ii.length !== ij.length) return ii.length - ij.length;
    for (let g = 0; g < ii.length; g++) {
      const a = ii[g]!;
      const b = ij[g]!;
      if (a.length !== b.length) return a.length - b.length;
      for (let k = 0; k < a.length; k++) {
        if (a[k]!.selector !== b[k]!.selector) return cmpStr(a[k]!.selector, b[k]!.selector);
        const da = records[a[k]!.link]!.digest;
        const db = records[b[k]!.link]!.digest;
        if (da !== db) return cmpStr(da, db);
      }
    }
    return cmpHint(nodes[i]!.hint, nodes[j]!.hint) || cmpStr(structKeys[i]!, structKeys[j]!) || i - j;
  });
  const newRecordIndex = new Array<number>(records.length);
  order.forEach((old, i) => (newRecordIndex[old] = i));
  const outRecords: CacheRecord[] = order.map((old) => {
    const r = records[old]!;
    return {
      results: r.results.map((res) => ({ layer: layers[res.layer]!.newIndex, createdAt: res.createdAt })),
      chains: [],
      digest: r.digest,
      inputs: r.inputs.map((g) =>
        g
          .map((inp) => ({ selector: inp.selector, link: newRecordIndex[inp.link]! }))
          .sort((x, y) => x.link - y.link || cmpStr(x.selector, y.selector)),
      ),
    };
  });

  return { config: { layers: outLayers, records: outRecords }, descriptors };
}

/**
 * A hash of each record's whole upstream structure (digest, inputs with
 * selectors, result), computed sources-first without recursion. Only used to
 * order records that BuildKit's comparison leaves tied.
 */
function structuralKeys(nodes: NormNode[], records: CacheRecord[]): string[] {
  const keys = new Array<string>(nodes.length);
  const state = new Uint8Array(nodes.length); // 0 new, 1 in progress, 2 done
  for (let start = 0; start < nodes.length; start++) {
    if (state[start] === 2) continue;
    const stack: number[] = [start];
    while (stack.length) {
      const i = stack[stack.length - 1]!;
      if (state[i] === 0) {
        state[i] = 1;
        for (const g of records[i]!.inputs) for (const inp of g) if (state[inp.link] === 0) stack.push(inp.link);
        continue;
      }
      stack.pop();
      if (state[i] === 2) continue;
      const r = records[i]!;
      const h = createHash('sha256').update(r.digest);
      for (const g of r.inputs) {
        // A source still in progress is a loop; it contributes a fixed marker.
        const parts = g.map((inp) => `${inp.selector}\u0000${state[inp.link] === 2 ? keys[inp.link] : 'loop'}`).sort();
        h.update(`\u0001${parts.join('\u0002')}`);
      }
      const res = nodes[i]!.result;
      if (res) h.update(`\u0003${res.createdAt}\u0003${res.layers.map((l) => l.digest).join('>')}`);
      keys[i] = h.digest('hex');
      state[i] = 2;
    }
  }
  return keys;
}
