// The operations the CLI and the gRPC server expose, over any backend:
// inspect one cache, import a fallback chain or a merge of sources, export a
// graph, and copy (import several, export one).
import { BkError, isNotFound, notFound } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { ContentStore, FetchOptions } from '../store/types.js';
import { buildCacheManifest } from './export.js';
import { CacheGraph } from './graph.js';
import type { MarshalResult } from './marshal.js';
import { addToGraph, loadBytes, type LoadedCache } from './import.js';
import { openExport, openImport, readManifest, type BackendContext } from './remote/index.js';
import { formatCacheSpec, type CacheSpec } from './spec.js';
import { emptyStats, pushCache, type BlobSource, type TransferOptions, type TransferStats } from './transfer.js';

export interface CacheSummary {
  kind: LoadedCache['kind'];
  mediaType: string;
  manifest: string;
  config: string | null;
  layers: number;
  records: number;
}

export function summarize(loaded: LoadedCache): CacheSummary {
  return {
    kind: loaded.kind,
    mediaType: loaded.mediaType,
    manifest: loaded.manifest.digest,
    config: loaded.config?.digest ?? null,
    layers: loaded.layerCount,
    records: loaded.recordCount,
  };
}

/** Serves blobs from the stores caches were imported from (the first store that listed a digest). */
export class SourceBlobs implements BlobSource {
  private readonly byDigest = new Map<string, ContentStore>();

  add(store: ContentStore, loaded: LoadedCache): void {
    for (const part of loaded.parts) for (const d of part.provider.keys()) if (!this.byDigest.has(d)) this.byDigest.set(d, store);
  }

  origin(digest: string): ContentStore | undefined {
    return this.byDigest.get(digest);
  }

  /** Closes the stores (connection pools) once their blobs are no longer needed. */
  async close(): Promise<void> {
    await Promise.all([...new Set(this.byDigest.values())].map((s) => s.close?.()));
  }

  async fetch(desc: Descriptor, opts?: FetchOptions) {
    const store = this.byDigest.get(desc.digest);
    if (!store) throw notFound(`blob ${desc.digest} is not in any imported cache`);
    return store.fetch(desc, opts);
  }
}

/** Opens a source and loads its cache; the store is closed again when that fails. */
export async function openLoaded(
  spec: CacheSpec,
  ctx: BackendContext = {},
  signal?: AbortSignal,
): Promise<{ store: ContentStore; loaded: LoadedCache; reference?: string }> {
  const target = await openImport(spec, ctx);
  try {
    const { desc, bytes } = await readManifest(target, signal);
    return { store: target.store, loaded: await loadBytes(target.store, desc, bytes, { signal }), reference: target.reference };
  } catch (err) {
    await target.store.close?.();
    throw err;
  }
}

/** The first spec of a chain whose cache exists, loaded; NOT_FOUND (the last one's) when none does. */
export async function loadFirst<T>(chain: CacheSpec[], load: (spec: CacheSpec) => Promise<T>): Promise<{ spec: CacheSpec; value: T }> {
  for (const [i, spec] of chain.entries()) {
    try {
      return { spec, value: await load(spec) };
    } catch (err) {
      if (!isNotFound(err) || i === chain.length - 1) throw err;
    }
  }
  throw new BkError('INTERNAL', 'empty source chain');
}

export async function inspectCache(
  spec: CacheSpec,
  ctx: BackendContext = {},
  opts: { signal?: AbortSignal } = {},
): Promise<{ summary: CacheSummary; loaded: LoadedCache }> {
  const { store, loaded } = await openLoaded(spec, ctx, opts.signal);
  try {
    return { summary: summarize(loaded), loaded };
  } finally {
    await store.close?.();
  }
}

export interface ImportedSource {
  index: number;
  spec: CacheSpec;
  store: ContentStore;
  loaded: LoadedCache;
}

export interface ImportChainResult {
  /** The source that hit; undefined when every source was missing (or ignored). */
  hit?: ImportedSource;
  graph: CacheGraph;
  blobs: SourceBlobs;
  /** Sources that were skipped, with why. */
  misses: { index: number; spec: string; code: string; message: string }[];
}

function ignoresErrors(spec: CacheSpec, all?: boolean): boolean {
  const v = spec.attrs['ignore-error'];
  return all === true || v === 'true' || v === '1';
}

/**
 * A fallback chain: the first source that exists wins. Not found moves on;
 * any other error fails the import unless the source says ignore-error=true.
 */
export async function importChain(
  specs: CacheSpec[],
  ctx: BackendContext = {},
  opts: { ignoreErrors?: boolean; signal?: AbortSignal } = {},
): Promise<ImportChainResult> {
  const graph = new CacheGraph();
  const blobs = new SourceBlobs();
  const misses: ImportChainResult['misses'] = [];
  for (const [index, spec] of specs.entries()) {
    try {
      opts.signal?.throwIfAborted();
      const { store, loaded } = await openLoaded(spec, ctx, opts.signal);
      addToGraph(graph, loaded);
      blobs.add(store, loaded);
      return { hit: { index, spec, store, loaded }, graph, blobs, misses };
    } catch (err) {
      const e = err instanceof BkError ? err : undefined;
      if (opts.signal?.aborted) throw err;
      if (isNotFound(err) || ignoresErrors(spec, opts.ignoreErrors)) {
        misses.push({ index, spec: formatCacheSpec(spec), code: e?.code ?? 'INTERNAL', message: (err as Error).message });
        continue;
      }
      throw err;
    }
  }
  return { graph, blobs, misses };
}

/**
 * Imports every source into one graph, as BuildKit parses several configs
 * into one chain set. A source is a fallback chain: its first spec whose
 * cache exists is the one imported.
 */
export async function importMerged(
  chains: CacheSpec[][],
  ctx: BackendContext = {},
  opts: { signal?: AbortSignal } = {},
): Promise<{ graph: CacheGraph; blobs: SourceBlobs; sources: ImportedSource[]; skipped: string[] }> {
  const graph = new CacheGraph();
  const blobs = new SourceBlobs();
  const sources: ImportedSource[] = [];
  const skipped: string[] = [];
  try {
    for (const [index, chain] of chains.entries()) {
      opts.signal?.throwIfAborted();
      let got: Awaited<ReturnType<typeof loadFirst<{ store: ContentStore; loaded: LoadedCache }>>>;
      try {
        got = await loadFirst(chain, (s) => openLoaded(s, ctx, opts.signal));
      } catch (err) {
        // ignore-error=true on a source: its failure (missing or not) leaves it out of the merge, as BuildKit ignores it.
        if (opts.signal?.aborted || !chain.some((s) => ignoresErrors(s))) throw err;
        skipped.push(`source ${index} skipped (ignore-error=true): ${(err as Error).message}`);
        continue;
      }
      const { spec, value } = got;
      addToGraph(graph, value.loaded);
      blobs.add(value.store, value.loaded);
      sources.push({ index, spec, ...value });
    }
  } catch (err) {
    await blobs.close();
    throw err;
  }
  return { graph, blobs, sources, skipped };
}

export interface ExportResult {
  /** Undefined when the graph had no layers and nothing was written (BuildKit skips such exports too). */
  manifest?: Descriptor;
  config?: Descriptor;
  target: string;
  tag: string;
  stats: TransferStats;
  warnings: string[];
}

export async function exportGraph(
  graph: CacheGraph,
  blobs: BlobSource,
  spec: CacheSpec,
  ctx: BackendContext = {},
  opts: Omit<TransferOptions, 'tag'> = {},
): Promise<ExportResult> {
  return withExportTarget(spec, ctx, (target) => exportTo(target, graph, blobs, opts));
}

/** Runs `fn` on the export target `spec` names, closing its store afterwards whatever happens. */
export async function withExportTarget<T>(spec: CacheSpec, ctx: BackendContext, fn: (target: Awaited<ReturnType<typeof openExport>>) => Promise<T>): Promise<T> {
  const target = await openExport(spec, ctx);
  try {
    return await fn(target);
  } finally {
    await target.store.close?.();
  }
}

function exportTo(
  target: Awaited<ReturnType<typeof openExport>>,
  graph: CacheGraph,
  blobs: BlobSource,
  opts: Omit<TransferOptions, 'tag'>,
): Promise<ExportResult> {
  return exportMarshalledTo(target, graph.marshal(), blobs, opts);
}

/** exportTo for a graph already marshalled, for callers that also report on the marshalled config (trim). */
export async function exportMarshalledTo(
  target: Awaited<ReturnType<typeof openExport>>,
  { flat, descriptors }: MarshalResult,
  blobs: BlobSource,
  opts: Omit<TransferOptions, 'tag'>,
): Promise<ExportResult> {
  if (flat.layers === 0) {
    return {
      target: target.name,
      tag: target.tag,
      stats: emptyStats(),
      warnings: ['no cache record has layers; nothing exported'],
    };
  }
  const built = buildCacheManifest(flat, descriptors, target.shape);
  const stats = await pushCache(target.store, built, blobs, { ...opts, tag: target.tag });
  return { manifest: built.manifest.desc, config: built.config.desc, target: target.name, tag: target.tag, stats, warnings: built.warnings };
}

export interface CopyOptions extends Omit<TransferOptions, 'tag'> {
  /** Stores blobs may be mounted from (default: any); others are read and uploaded. */
  mayMountFrom?: (store: ContentStore) => boolean;
  /** Sees the target store once it is opened, before anything is read or written; throwing stops the copy. */
  onTarget?: (store: ContentStore) => void;
}

/**
 * Imports every source into one graph and exports it: re-shaping,
 * converting and merging caches. A source is a spec or a fallback chain of
 * specs (its first that exists is copied).
 */
export async function copyCache(
  from: (CacheSpec | CacheSpec[])[],
  to: CacheSpec,
  ctx: BackendContext = {},
  opts: CopyOptions = {},
): Promise<ExportResult & { sources: { spec: string; summary: CacheSummary }[] }> {
  const { mayMountFrom, onTarget, ...transfer } = opts;
  // Opened first, so the target's options are validated before anything is read.
  const target = await openExport(to, ctx);
  let res: ExportResult;
  let sources: ImportedSource[];
  let skipped: string[];
  try {
    onTarget?.(target.store);
    const merged = await importMerged(
      from.map((f) => (Array.isArray(f) ? f : [f])),
      ctx,
      { signal: opts.signal },
    );
    sources = merged.sources;
    skipped = merged.skipped;
    const blobs: BlobSource = mayMountFrom
      ? {
          fetch: (d, o) => merged.blobs.fetch(d, o),
          origin: (digest) => {
            const s = merged.blobs.origin(digest);
            return s && mayMountFrom(s) ? s : undefined;
          },
        }
      : merged.blobs;
    try {
      res = await exportTo(target, merged.graph, blobs, transfer);
    } finally {
      await merged.blobs.close();
    }
  } finally {
    await target.store.close?.();
  }
  const warnings = [...skipped, ...sources.flatMap((s) => s.loaded.warnings), ...res.warnings];
  return { ...res, warnings, sources: sources.map((s) => ({ spec: formatCacheSpec(s.spec), summary: summarize(s.loaded) })) };
}
