// Export shapes: from a marshalled config and its layer descriptors to the
// cache manifest BuildKit writes (cache/remotecache/export.go Finalize and
// ExportableCache): either an index (OCI index, or Docker manifest list
// without OCI media types) whose last child is the config, or an OCI image
// manifest whose `config` is the cache config. Layers appear in config order,
// converted to the target media type family, annotations kept, and nothing
// else (no manifest annotations, no artifactType).
import { invalidArgument, resourceExhausted } from '../errors.js';
import { ANNOTATION_UNCOMPRESSED, type Descriptor } from '../oci/descriptor.js';
import { digestBytes, isDigest } from '../oci/digest.js';
import { encodeIndex, encodeManifest } from '../oci/manifest.js';
import { convertLayerMediaType, MT } from '../oci/media-types.js';
import { BUILDKIT_IMPORT_LIMIT, MAX_METADATA_BYTES } from '../store/content.js';
import { encodeCacheConfig, type CacheConfig } from './config.js';
import { FlatConfig } from './flat-config.js';

export interface ShapeOptions {
  /** Write an OCI image manifest instead of an index. */
  imageManifest: boolean;
  /** OCI media types (true) or Docker's (false). */
  ociMediatypes: boolean;
}

/** Go's strconv.ParseBool, which buildctl attributes go through. */
export function parseGoBool(name: string, v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw invalidArgument(`failed to parse ${name}: invalid boolean ${JSON.stringify(v)}`, { reason: 'invalid-option' });
}

/**
 * Option semantics of current BuildKit: oci-mediatypes defaults to true;
 * image-manifest defaults to true unless oci-mediatypes=false; asking for an
 * image manifest without OCI media types is an error.
 */
export function shapeOptions(attrs: Record<string, string | undefined>): ShapeOptions {
  const oci = attrs['oci-mediatypes'] === undefined ? true : parseGoBool('oci-mediatypes', attrs['oci-mediatypes']);
  const im = attrs['image-manifest'] === undefined ? oci : parseGoBool('image-manifest', attrs['image-manifest']);
  if (im && !oci) {
    throw invalidArgument('OCI media types are required for the image-manifest cache format (image-manifest=true needs oci-mediatypes=true)', {
      reason: 'image-manifest-needs-oci',
    });
  }
  return { imageManifest: im, ociMediatypes: oci };
}

export interface BuiltCache {
  config: { desc: Descriptor; bytes: Buffer };
  manifest: { desc: Descriptor; bytes: Buffer };
  /** Layer blobs to store, each once, in manifest order. */
  blobs: Descriptor[];
  warnings: string[];
}

/** Builds the config and manifest bytes of one cache. */
export function buildCacheManifest(config: CacheConfig | FlatConfig, descriptors: Map<string, Descriptor>, opts: ShapeOptions): BuiltCache {
  if (opts.imageManifest && !opts.ociMediatypes) {
    throw invalidArgument('OCI media types are required for the image-manifest cache format', { reason: 'image-manifest-needs-oci' });
  }
  const warnings: string[] = [];
  const layers: Descriptor[] = [];
  const blobs = new Map<string, Descriptor>();
  const flat = config instanceof FlatConfig;
  for (const blob of flat ? config.layerBlobs : config.layers.map((l) => l.blob)) {
    const d = descriptors.get(blob);
    if (!d) throw invalidArgument(`missing descriptor for blob ${blob}`, { reason: 'missing-blob' });
    const diffID = d.annotations?.[ANNOTATION_UNCOMPRESSED];
    if (!diffID || !isDigest(diffID)) {
      throw invalidArgument(
        `layer ${blob} has no valid ${ANNOTATION_UNCOMPRESSED} annotation; BuildKit cannot import a cache layer without it`,
        { reason: 'missing-uncompressed-annotation' },
      );
    }
    const out: Descriptor = { ...d, mediaType: convertLayerMediaType(d.mediaType, opts.ociMediatypes) };
    layers.push(out);
    if (!blobs.has(out.digest)) blobs.set(out.digest, out);
  }

  const configBytes = flat ? config.encode() : Buffer.from(encodeCacheConfig(config), 'utf8');
  const configDesc: Descriptor = { mediaType: MT.buildkitCacheConfig, digest: digestBytes(configBytes), size: configBytes.length };

  let mediaType: string;
  let text: string;
  if (opts.imageManifest) {
    mediaType = MT.ociManifest;
    text = encodeManifest({ schemaVersion: 2, mediaType, config: configDesc, layers });
  } else {
    mediaType = opts.ociMediatypes ? MT.ociIndex : MT.dockerManifestList;
    text = encodeIndex({ schemaVersion: 2, mediaType, manifests: [...layers, configDesc] });
  }
  const manifestBytes = Buffer.from(text, 'utf8');
  const manifestDesc: Descriptor = { mediaType, digest: digestBytes(manifestBytes), size: manifestBytes.length };

  // Over our own read limit nothing (bkcache nor BuildKit) could import it: refuse before anything is written.
  for (const [what, n] of [['config', configBytes.length], ['manifest', manifestBytes.length]] as const) {
    if (n > MAX_METADATA_BYTES) {
      throw resourceExhausted(`cache ${what} would be ${n} bytes, over the ${MAX_METADATA_BYTES}-byte limit an import reads`, { reason: 'graph-too-large' });
    }
  }
  if (configBytes.length > BUILDKIT_IMPORT_LIMIT) {
    warnings.push(`cache config is ${configBytes.length} bytes: BuildKit will refuse to import it (limit 1 MiB)`);
  }
  if (manifestBytes.length > BUILDKIT_IMPORT_LIMIT) {
    warnings.push(`cache manifest is ${manifestBytes.length} bytes: BuildKit will refuse to import it (limit 1 MiB)`);
  }
  return {
    config: { desc: configDesc, bytes: configBytes },
    manifest: { desc: manifestDesc, bytes: manifestBytes },
    blobs: [...blobs.values()],
    warnings,
  };
}
