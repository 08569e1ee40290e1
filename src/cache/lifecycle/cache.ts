// What every lifecycle tool starts from: one cache opened through the
// content-store interface (so local layouts, registries and anything else a
// backend provides work alike) and imported into the solver-side graph, and
// the one way they all write a smaller cache back: a subgraph that keeps some
// results, exported like `copy` exports.
import type { Descriptor } from '../../oci/descriptor.js';
import type { ContentStore } from '../../store/types.js';
import { CacheGraph, type CacheNode, type FlatGraph, type Hint, type NodeResult } from '../graph.js';
import { addToGraph, type LoadedCache } from '../import.js';
import { failedPrecondition, isNotFound } from '../../errors.js';
import { exportMarshalledTo, openLoaded, SourceBlobs, withExportTarget, type ExportResult } from '../operations.js';
import type { BackendContext, ExportTarget } from '../remote/index.js';
import type { CacheSpec } from '../spec.js';
import type { TransferOptions } from '../transfer.js';
import type { MarshalResult } from '../marshal.js';

export interface OpenedCache {
  store: ContentStore;
  loaded: LoadedCache;
  /** The records as BuildKit parses them (one node per record, results with layer descriptors). */
  graph: CacheGraph;
  /** The tag (or digest) it was read from in `store`, when known: an export to that tag replaces it. */
  reference?: string;
  close(): Promise<void>;
}

export async function openCache(spec: CacheSpec, ctx: BackendContext = {}, signal?: AbortSignal): Promise<OpenedCache> {
  const { store, loaded, reference } = await openLoaded(spec, ctx, signal);
  const graph = new CacheGraph();
  try {
    addToGraph(graph, loaded);
  } catch (err) {
    await store.close?.();
    throw err;
  }
  return { store, loaded, graph, reference, close: async () => store.close?.() };
}

/** Result of `n`, if it names at least one layer (a result without layers names nothing). */
export function resultOf(n: CacheNode): CacheNode['result'] {
  return n.result && n.result.layers.length > 0 ? n.result : undefined;
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
  // The graph read once, into flat arrays: the walks below read those, not every record's objects again.
  const f = graph.flatten();
  // Everything upstream of a kept result, without recursion.
  while (sp > 0) {
    const d = stack[--sp]!;
    for (let l = f.linkStart[f.groupStart[d]!]!; l < f.linkStart[f.groupStart[d + 1]!]!; l++) {
      const s = f.src[l]!;
      if (!needed[s]) {
        needed[s] = 1;
        stack[sp++] = s;
      }
    }
  }
  // The kept records renumbered in graph order; every link of a needed record comes from a needed one, so all are kept.
  const renumbered = new Int32Array(f.size);
  let size = 0;
  let groups = 0;
  let links = 0;
  for (let i = 0; i < f.size; i++) {
    if (!needed[i]) continue;
    renumbered[i] = size++;
    groups += f.groupStart[i + 1]! - f.groupStart[i]!;
    links += f.linkStart[f.groupStart[i + 1]!]! - f.linkStart[f.groupStart[i]!]!;
  }
  const sub: FlatGraph = {
    size,
    digest: new Array<string>(size),
    result: new Array<NodeResult | undefined>(size),
    hint: new Array<Hint | undefined>(size),
    groupStart: new Int32Array(size + 1),
    linkStart: new Int32Array(groups + 1),
    src: new Int32Array(links),
    selector: new Array<string>(links),
  };
  // Hints name sources of the original graph; keep the numbering.
  let sources = 0;
  graph.hintsView.forEach((v) => (sources = Math.max(sources, v[0] + 1)));
  let g = 0;
  let l = 0;
  for (let i = 0; i < f.size; i++) {
    const hint = f.hint[i];
    if (hint) sources = Math.max(sources, hint[0] + 1);
    if (!needed[i]) continue;
    const k = renumbered[i]!;
    sub.digest[k] = f.digest[i]!;
    sub.hint[k] = hint;
    // A copy of the result, so the subgraph shares no mutable object with `graph`.
    const res = f.result[i];
    sub.result[k] = keptResult[i] ? { createdAt: res!.createdAt, layers: res!.layers.map((d) => ({ ...d })) } : undefined;
    for (let gi = f.groupStart[i]!; gi < f.groupStart[i + 1]!; gi++) {
      sub.linkStart[g++] = l;
      for (let li = f.linkStart[gi]!; li < f.linkStart[gi + 1]!; li++) {
        sub.src[l] = renumbered[f.src[li]!]!;
        sub.selector[l++] = f.selector[li]!;
      }
    }
    sub.groupStart[k + 1] = g;
  }
  sub.linkStart[g] = l;
  return { graph: CacheGraph.fromFlat(sub, graph, sources), dropped };
}

/** Exports `graph`, reading the blobs it names from the store `from` was loaded from. */
export async function exportFrom(
  from: OpenedCache,
  graph: CacheGraph,
  to: CacheSpec,
  ctx: BackendContext = {},
  opts: Omit<TransferOptions, 'tag'> = {},
): Promise<ExportResult> {
  return exportMarshalled(from, graph.marshal(), to, ctx, opts);
}

/**
 * What a trim or repair checks before it moves its target tag. It replaces
 * whatever the tag names, and someone may push there while it runs (a CI
 * build exporting its cache, another repair): the tag moves only if it still
 * names what it did when the run began, which for an export to the tag the
 * cache was read from is the manifest read (a push between the read and the
 * export counts too). Otherwise the new cache is stored, the tag is left as
 * it is, and FAILED_PRECONDITION (tag-changed) says so. The registry API has
 * no conditional PUT: a push in the moment between the check and the tag
 * PUT is not seen.
 *
 * An inline cache lives in an image. Written back to the tag it was read
 * from, the cache manifest would replace the image: the tag would name a
 * cache, and whoever pulls it gets no image. Refused before anything is
 * written; another tag is fine.
 */
async function guardTag(from: OpenedCache, target: ExportTarget, signal?: AbortSignal): Promise<(manifest: Descriptor) => Promise<void>> {
  const named = async () =>
    (
      await target.store.resolve(target.tag, { signal }).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      })
    )?.digest;
  const before = await named();
  if (from.loaded.kind === 'inline' && before === from.loaded.manifest.digest) {
    throw failedPrecondition(`${target.name} names the image this inline cache was read from; a cache written there would replace the image (export to another tag)`, {
      reason: 'would-replace-image',
    });
  }
  const sameTag = from.reference !== undefined && from.reference === target.tag && from.store.location === target.store.location;
  const expected = sameTag ? from.loaded.manifest.digest : before;
  return async (manifest) => {
    const now = await named();
    if (now === expected || now === manifest.digest) return;
    throw failedPrecondition(
      `${target.name} changed while this ran: it names ${now ?? 'nothing'} now, ${expected ?? 'nothing'} when this began; ` +
        `the new cache ${manifest.digest} is stored but the tag was left as it is (run again to work on what it names now)`,
      { reason: 'tag-changed' },
    );
  };
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
  return withExportTarget(to, ctx, async (target) => {
    const beforeTag = await guardTag(from, target, opts.signal);
    return exportMarshalledTo(target, marshalled, sourceOf(from), { ...opts, beforeTag });
  });
}
