// Import: from the bytes of a manifest to a cache graph, inferring the shape
// the way BuildKit's contentCacheImporter.Resolve does
// (cache/remotecache/import.go): an index whose child has the cache config
// media type, an image manifest whose config has it, or else an image (or
// index of images) carrying inline cache in its config.
import { invalidArgument, resourceExhausted } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseJsonBytes } from '../oci/go-json.js';
import { decodeIndex, decodeManifest, detectManifestMediaType } from '../oci/manifest.js';
import { isIndexMediaType, isManifestMediaType, MT } from '../oci/media-types.js';
import { BUILDKIT_IMPORT_LIMIT, fetchBytes, MAX_METADATA_BYTES } from '../store/content.js';
import type { Fetcher } from '../store/types.js';
import { decodeCacheConfig, type CacheConfig } from './config.js';
import type { CacheGraph } from './graph.js';
import { inlineCacheFromImage } from './inline.js';
import { parseConfig, type DescriptorMap } from './parse.js';

export type CacheKind = 'index' | 'image-manifest' | 'inline';

export interface CachePart {
  config: CacheConfig;
  provider: DescriptorMap;
}

export interface LoadedCache {
  kind: CacheKind;
  /** The manifest's media type as inferred. */
  mediaType: string;
  manifest: Descriptor;
  /** The cache config blob; null for inline caches. */
  config: Descriptor | null;
  /** Layers and records of the cache config; for inline, image layers and inline records over all platforms. */
  layerCount: number;
  recordCount: number;
  /** One part for a cache config, one per platform image for inline cache. */
  parts: CachePart[];
  warnings: string[];
}

function overLimitWarning(what: string, d: Descriptor): string | undefined {
  return d.size > BUILDKIT_IMPORT_LIMIT
    ? `${what} ${d.digest} is ${d.size} bytes: BuildKit refuses to import configs and manifests over 1 MiB`
    : undefined;
}

export interface LoadOptions {
  /** Ceiling for each config or manifest read (default 16 MiB). */
  limit?: number;
  signal?: AbortSignal;
}

export async function loadCache(store: Fetcher, manifest: Descriptor, opts: LoadOptions = {}): Promise<LoadedCache> {
  return loadBytes(store, manifest, await fetchBytes(store, manifest, opts.limit ?? MAX_METADATA_BYTES, opts.signal), opts);
}

/** loadCache for a manifest whose bytes were already read and verified (readManifest in remote/index.ts). */
export function loadBytes(store: Fetcher, manifest: Descriptor, bytes: Buffer, opts: LoadOptions = {}): Promise<LoadedCache> {
  return loadParsed(store, manifest, parseManifestBytes(bytes, manifest.digest), opts);
}

export function parseManifestBytes(bytes: Buffer, digest: string): unknown {
  return parseJsonBytes(bytes, `manifest ${digest}`);
}

/**
 * loadCache for a manifest already read, verified and parsed (`doc`): what
 * the manifest names (the cache config, child manifests, image configs)
 * is read from `store`.
 */
export async function loadParsed(store: Fetcher, manifest: Descriptor, doc: unknown, opts: LoadOptions = {}): Promise<LoadedCache> {
  const limit = opts.limit ?? MAX_METADATA_BYTES;
  const signal = opts.signal;
  const warnings: string[] = [];
  const w = overLimitWarning('manifest', manifest);
  if (w) warnings.push(w);
  const mediaType = detectManifestMediaType(doc);

  const provider: DescriptorMap = new Map();
  let configDesc: Descriptor | undefined;
  if (isIndexMediaType(mediaType)) {
    for (const m of decodeIndex(doc).manifests) {
      if (m.mediaType === MT.buildkitCacheConfig) configDesc = m;
      else provider.set(m.digest, m);
    }
  } else {
    const m = decodeManifest(doc);
    if (m.config.mediaType === MT.buildkitCacheConfig) configDesc = m.config;
    for (const l of m.layers) provider.set(l.digest, l);
  }

  if (configDesc) {
    const cw = overLimitWarning('cache config', configDesc);
    if (cw) warnings.push(cw);
    const config = decodeCacheConfig(await fetchBytes(store, configDesc, limit, signal));
    return {
      kind: isIndexMediaType(mediaType) ? 'index' : 'image-manifest',
      mediaType,
      manifest: { mediaType, digest: manifest.digest, size: manifest.size },
      config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
      layerCount: config.layers.length,
      recordCount: config.records.length,
      parts: [{ config, provider }],
      warnings,
    };
  }
  return loadInline(store, manifest, mediaType, doc, warnings, limit, signal);
}

/**
 * What the manifests of an inline cache (an image, or an index of platform
 * images, nested) may make an import read: at most this many manifests and
 * image configs, and this many bytes of them in all. Each read is bounded
 * on its own, but an index lists thousands of children in its 4 MiB, and
 * each child and its config is read and held: without a total a hostile
 * index makes the import read for hours and hold gigabytes.
 */
export const MAX_INLINE_READS = 1024;
export const MAX_INLINE_BYTES = 64 << 20;

async function loadInline(
  store: Fetcher,
  manifest: Descriptor,
  mediaType: string,
  doc: unknown,
  warnings: string[],
  limit: number,
  signal?: AbortSignal,
): Promise<LoadedCache> {
  let reads = 0;
  let bytes = 0;
  const read = async (d: Descriptor): Promise<Buffer> => {
    if (++reads > MAX_INLINE_READS || bytes + d.size > MAX_INLINE_BYTES) {
      throw resourceExhausted(`${manifest.digest} names more than ${MAX_INLINE_READS} manifests and configs, or ${MAX_INLINE_BYTES} bytes of them, to read`, {
        reason: 'too-many-manifests',
      });
    }
    const b = await fetchBytes(store, d, Math.min(limit, MAX_INLINE_BYTES - bytes), signal);
    bytes += b.length;
    return b;
  };
  // Every image manifest reachable from the top one, each once, in index order.
  const images: { digest: string; doc: unknown }[] = [];
  const seen = new Set<string>();
  const walk = async (digest: string, d: unknown, mt: string, depth: number): Promise<void> => {
    if (seen.has(digest)) return;
    seen.add(digest);
    if (!isIndexMediaType(mt)) {
      images.push({ digest, doc: d });
      return;
    }
    if (depth > 4) throw invalidArgument('index nesting is too deep', { reason: 'uninferrable' });
    for (const child of decodeIndex(d).manifests) {
      if (!isManifestMediaType(child.mediaType) || seen.has(child.digest)) continue;
      const cd = parseJsonBytes(await read(child), `manifest ${child.digest}`);
      await walk(child.digest, cd, detectManifestMediaType(cd), depth + 1);
    }
  };
  await walk(manifest.digest, doc, mediaType, 0);

  const parts: CachePart[] = [];
  let layerCount = 0;
  let recordCount = 0;
  for (const img of images) {
    const m = decodeManifest(img.doc);
    if (!m.config.digest || m.layers.length === 0) continue;
    const { part, skipped } = inlineCacheFromImage(m, await read(m.config));
    if (!part) {
      if (skipped && skipped !== 'image has no inline cache') warnings.push(`${img.digest}: ${skipped}; skipped`);
      continue;
    }
    parts.push(part);
    layerCount += m.layers.length;
    recordCount += part.config.records.length;
  }
  if (parts.length === 0) {
    throw invalidArgument(
      `${manifest.digest} (${mediaType}) is not a BuildKit cache: no cache config child or config, and no image with inline cache`,
      { reason: 'uninferrable' },
    );
  }
  return {
    kind: 'inline',
    mediaType,
    manifest: { mediaType, digest: manifest.digest, size: manifest.size },
    config: null,
    layerCount,
    recordCount,
    parts,
    warnings,
  };
}

/** Adds a loaded cache's records to `graph` (one source per part, in order). */
export function addToGraph(graph: CacheGraph, loaded: LoadedCache): void {
  for (const part of loaded.parts) parseConfig(graph, part.config, part.provider);
}
