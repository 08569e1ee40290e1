// What every lifecycle tool starts from: one cache opened through the
// content-store interface (so local layouts, registries and anything else a
// backend provides work alike) and imported into the solver-side graph, and
// the one way they all write a smaller cache back: a subgraph that keeps some
// results, exported like `copy` exports.
import type { ContentStore } from '../../store/types.js';
import { CacheGraph, type CacheNode } from '../graph.js';
import { addToGraph, type LoadedCache } from '../import.js';
import { exportGraph, exportMarshalledTo, openLoaded, SourceBlobs, withExportTarget, type ExportResult } from '../operations.js';
import type { BackendContext } from '../remote/index.js';
import type { CacheSpec } from '../spec.js';
import type { TransferOptions } from '../transfer.js';
import type { MarshalResult } from '../marshal.js';

export interface OpenedCache {
  store: ContentStore;
  loaded: LoadedCache;
  /** The records as BuildKit parses them (one node per record, results with layer descriptors). */
  graph: CacheGraph;
  close(): Promise<void>;
}

export async function openCache(spec: CacheSpec, ctx: BackendContext = {}, signal?: AbortSignal): Promise<OpenedCache> {
  const { store, loaded } = await openLoaded(spec, ctx, signal);
  const graph = new CacheGraph();
  try {
    addToGraph(graph, loaded);
  } catch (err) {
    await store.close?.();
    throw err;
  }
  return { store, loaded, graph, close: async () => store.close?.() };
}

/** Result of `n`, if it names at least one layer (a result without layers names nothing). */
export function resultOf(n: CacheNode): CacheNode['result'] {
  return n.result && n.result.layers.length > 0 ? n.result : undefined;
}

/** Distinct blobs (digest -> size) the results of `nodes` name: what a cache's layers weigh. */
export function namedBlobs(nodes: Iterable<CacheNode>): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of nodes) for (const l of resultOf(n)?.layers ?? []) out.set(l.digest, l.size);
  return out;
}

export function sumSizes(blobs: Map<string, number>): number {
  let s = 0;
  for (const v of blobs.values()) s += v;
  return s;
}

/**
 * A copy of `graph` that keeps the results `keep` accepts, and exactly the
 * records BuildKit needs to reach them: those results' records and every
 * record upstream of them through links. Records that lead to no kept result
 * go, so the graph shrinks with its results and stays valid (every kept
 * record's inputs are kept). Order and source hints are copied, so the
 * marshalled bytes are what `copy` writes for the same records.
 */
export function keepResults(graph: CacheGraph, keep: (n: CacheNode) => boolean): { graph: CacheGraph; dropped: CacheNode[] } {
  const nodes = graph.nodes;
  // Per record (by index): 1 if its result is kept; 1 if it is needed. Typed arrays, not Sets of nodes.
  const keptResult = new Uint8Array(nodes.length);
  const needed = new Uint8Array(nodes.length);
  const stack = new Int32Array(nodes.length);
  let sp = 0;
  const dropped: CacheNode[] = [];
  for (const n of graph.recordsWithResults()) {
    if (!resultOf(n)) continue;
    if (keep(n)) {
      keptResult[n.index] = needed[n.index] = 1;
      stack[sp++] = n.index;
    } else dropped.push(n);
  }
  // Everything upstream of a kept result, without recursion.
  while (sp > 0) {
    const links = nodes[stack[--sp]!]!.links;
    for (let k = 0; k < links.length; k++) {
      const g = links[k]!;
      for (let j = 0; j < g.size; j++) {
        const s = g.srcAt(j).index;
        if (!needed[s]) {
          needed[s] = 1;
          stack[sp++] = s;
        }
      }
    }
  }
  const out = new CacheGraph();
  graph.layerHints.forEach((v, k) => out.layerHints.set(k, v));
  // Hints name sources of the original graph; keep the numbering.
  out.reserveSources(graphSources(graph));
  const copies: (CacheNode | undefined)[] = new Array(nodes.length);
  for (const n of nodes) {
    if (!needed[n.index]) continue;
    const c = out.addCopyOf(n);
    if (keptResult[n.index]) c.result = { createdAt: n.result!.createdAt, layers: n.result!.layers.map((l) => ({ ...l })) };
    copies[n.index] = c;
  }
  for (let i = 0; i < nodes.length; i++) {
    const c = copies[i];
    if (!c) continue;
    const links = nodes[i]!.links;
    for (let k = 0; k < links.length; k++) {
      const g = links[k]!;
      for (let j = 0; j < g.size; j++) c.linkFrom(copies[g.srcAt(j).index]!, k, g.selectorAt(j));
    }
  }
  return { graph: out, dropped };
}

function graphSources(graph: CacheGraph): number {
  let max = -1;
  for (const n of graph.nodes) if (n.hint) max = Math.max(max, n.hint[0]);
  for (const h of graph.layerHints.values()) max = Math.max(max, h[0]);
  return max + 1;
}

/** Exports `graph`, reading the blobs it names from the store `from` was loaded from. */
export async function exportFrom(
  from: OpenedCache,
  graph: CacheGraph,
  to: CacheSpec,
  ctx: BackendContext = {},
  opts: Omit<TransferOptions, 'tag'> = {},
): Promise<ExportResult> {
  return exportGraph(graph, sourceOf(from), to, ctx, opts);
}

/** The opened cache's store as the source of its blobs (closed with the cache, not here). */
function sourceOf(from: OpenedCache): SourceBlobs {
  const blobs = new SourceBlobs();
  blobs.add(from.store, from.loaded);
  return blobs;
}

/**
 * exportFrom for a graph already marshalled (trim reports the marshalled
 * counts, and marshalling a large graph twice would double its cost).
 */
export async function exportMarshalled(
  from: OpenedCache,
  marshalled: MarshalResult,
  to: CacheSpec,
  ctx: BackendContext = {},
  opts: Omit<TransferOptions, 'tag'> = {},
): Promise<ExportResult> {
  return withExportTarget(to, ctx, (target) => exportMarshalledTo(target, marshalled, sourceOf(from), opts));
}
