// Writing a cache the gateway computed (a merge, a repair) to the upstream:
// blobs first (they are already there: a merge or a repair only ever names
// blobs its sources named), then the config blob, then the manifest by
// digest — pushCache's order, so nothing ever names what is missing. The
// manifest is content-addressed, so any number of daemons writing the same
// result write the same bytes: idempotent without coordination.
import { buildCacheManifest, type ShapeOptions } from '../../cache/export.js';
import type { CacheGraph } from '../../cache/graph.js';
import type { LoadedCache } from '../../cache/import.js';
import { SourceBlobs, type ExportResult } from '../../cache/operations.js';
import { pushCache } from '../../cache/transfer.js';
import { MT } from '../../oci/media-types.js';
import type { GatewayContext } from '../context.js';
import type { ManifestRead } from '../upstream/types.js';
import { UpstreamRepoStore } from './store.js';

/** The shape of a loaded cache, as `copy` would be asked to write it (image-manifest when the gateway must avoid indexes). */
export function shapeOf(loaded: LoadedCache, imageManifestOnly: boolean): ShapeOptions {
  if (imageManifestOnly || loaded.kind === 'image-manifest') return { imageManifest: true, ociMediatypes: true };
  return { imageManifest: false, ociMediatypes: loaded.mediaType !== MT.dockerManifestList };
}

/** Writes `graph` to `repo` (untagged); undefined when no record has layers (nothing to serve). */
export async function writeGraph(
  store: UpstreamRepoStore,
  graph: CacheGraph,
  sources: LoadedCache[],
  shape: ShapeOptions,
  signal?: AbortSignal,
): Promise<(ManifestRead & { pushed: ExportResult['stats'] }) | undefined> {
  const { flat, descriptors } = graph.marshal();
  if (flat.layers === 0) return undefined;
  const built = buildCacheManifest(flat, descriptors, shape);
  const blobs = new SourceBlobs();
  for (const l of sources) blobs.add(store, l);
  const pushed = await pushCache(store, built, blobs, { signal });
  return { mediaType: built.manifest.desc.mediaType, digest: built.manifest.desc.digest, bytes: built.manifest.bytes, pushed };
}

/** Points `tag` at `m` unless it already names it; failures are logged, never fatal (the tag is a convenience for readers that bypass the gateway). */
export async function bestEffortTag(ctx: GatewayContext, repo: string, tag: string, m: ManifestRead, current: string | undefined, signal?: AbortSignal): Promise<void> {
  if (current === m.digest) return;
  try {
    await ctx.upstream.putManifest(repo, tag, m, signal);
  } catch (err) {
    ctx.log.info('gateway policy: could not update the tag (readers through the gateway are not affected)', {
      repository: repo,
      tag,
      error: (err as Error).message.split('\n')[0],
    });
  }
}
