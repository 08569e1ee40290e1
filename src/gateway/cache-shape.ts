// Which pushed manifests are BuildKit caches, what they reference, and the
// index → image-manifest conversion for upstreams that refuse indexes (ECR).
// A cache is a manifest whose `config`, or an index whose last entry, has
// the cache config media type (what BuildKit's importer looks for,
// cache/remotecache/import.go); everything else passes through untouched.
import type { Descriptor } from '../oci/descriptor.js';
import { parseJsonBytes } from '../oci/go-json.js';
import { decodeIndex, decodeManifest, detectManifestMediaType, encodeManifest } from '../oci/manifest.js';
import { convertLayerMediaType, isIndexMediaType, MT } from '../oci/media-types.js';

export interface CacheManifest {
  shape: 'index' | 'image-manifest';
  config: Descriptor;
  layers: Descriptor[];
}

/** Manifest bytes parsed, and the kind of manifest they are by their mediaType field or shape. */
export interface SniffedManifest {
  doc: unknown;
  mediaType: string;
}

/** Parses manifest bytes once for every check of a request; undefined when they are not JSON of one manifest kind. */
export function sniffManifest(bytes: Buffer): SniffedManifest | undefined {
  try {
    const doc = parseJsonBytes(bytes, 'manifest');
    return { doc, mediaType: detectManifestMediaType(doc) };
  } catch {
    return undefined;
  }
}

/** The cache inside manifest bytes, or undefined for anything that is not a cache (or not valid JSON). */
export function cacheManifestOf(bytes: Buffer): CacheManifest | undefined {
  const sniffed = sniffManifest(bytes);
  return sniffed && cacheOfSniffed(sniffed);
}

/** cacheManifestOf for bytes already sniffed. */
export function cacheOfSniffed({ doc, mediaType: mt }: SniffedManifest): CacheManifest | undefined {
  try {
    if (isIndexMediaType(mt)) {
      const idx = decodeIndex(doc);
      const last = idx.manifests.at(-1);
      if (last?.mediaType !== MT.buildkitCacheConfig) return undefined;
      return { shape: 'index', config: last, layers: idx.manifests.slice(0, -1) };
    }
    const m = decodeManifest(doc);
    if (m.config.mediaType !== MT.buildkitCacheConfig) return undefined;
    return { shape: 'image-manifest', config: m.config, layers: m.layers };
  } catch {
    return undefined;
  }
}

/**
 * The image-manifest shape of a cache, as `bkcache copy ... image-manifest=true`
 * writes it (src/cache/export.ts buildCacheManifest): the cache config as
 * `config`, the layers in order with their annotations, media types moved to
 * the OCI family, and nothing else.
 */
export function toImageManifest(c: CacheManifest): { mediaType: string; bytes: Buffer } {
  const layers = c.layers.map((l) => ({ ...l, mediaType: convertLayerMediaType(l.mediaType, true) }));
  const text = encodeManifest({ schemaVersion: 2, mediaType: MT.ociManifest, config: c.config, layers });
  return { mediaType: MT.ociManifest, bytes: Buffer.from(text, 'utf8') };
}
