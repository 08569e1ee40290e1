// Manifests: GET/HEAD by tag or digest, PUT, DELETE.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests
// Non-cache manifests pass through byte for byte. Cache manifests are checked
// (every blob they name must be in the repository before the upstream sees
// them) and, with imageManifestOnly, stored in the image-manifest shape.
import { algorithmOf, digestBytes, isDigest } from '../oci/digest.js';
import { goField } from '../oci/go-json.js';
import { isIndexMediaType, isManifestMediaType } from '../oci/media-types.js';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../store/registry/manifests.js';
import { cacheManifestOf, cacheOfSniffed, sniffManifest, toImageManifest, type SniffedManifest } from './cache-shape.js';
import type { Call, GatewayContext } from './context.js';
import { DistError } from './errors.js';
import { afterPut, putTarget, readTag } from './policies/hooks.js';
import { PolicyMetrics } from './policies/metrics.js';
import { tierOf, type TierName } from './tiers.js';
import type { ManifestRead } from './upstream/types.js';

export const TIER_HEADER = 'bkcache-tier';

function manifestHeaders(m: ManifestRead): Record<string, string> {
  return { 'content-type': m.mediaType || 'application/json', 'content-length': String(m.bytes.length), 'docker-content-digest': m.digest };
}

export async function getManifest(ctx: GatewayContext, call: Call, repo: string, ref: string): Promise<void> {
  const accept = call.header('accept') ?? '';
  const byTag = !isDigest(ref);
  let m = await readTag(ctx, call, repo, ref, accept);
  let answered: TierName | undefined;
  const tier = tierOf(ctx.tiers, call.tenant, ctx.upstream, repo);
  // Hits and misses count cache lookups by tag: what a build's import asks first.
  const note = (t: string, found: ManifestRead | undefined) => {
    if (!byTag) return;
    if (!found) ctx.metrics.cacheManifest(t, 'miss');
    // Parsed once: a manifest read by tag may be megabytes.
    const isCache = !!found && cacheManifestOf(found.bytes) !== undefined;
    if (isCache) ctx.metrics.cacheManifest(t, 'hit');
    if (!found || isCache) PolicyMetrics.lookup(call, found ? 'hit' : 'miss');
  };
  note(tier?.tier ?? 'none', m);
  if (m) answered = tier?.tier;
  else if (tier?.global !== undefined && ctx.auth.may(call.identity, 'pull', tier.global)) {
    // A tenant-tier miss reads the global tier: by tag, and by digest for what a fallen-back tag named.
    m = await ctx.upstream.getManifest(tier.global, ref, accept, call.signal);
    note('global', m);
    if (m) answered = 'global';
  }
  if (!m) throw new DistError('MANIFEST_UNKNOWN');
  const headers = manifestHeaders(m);
  if (answered) headers[TIER_HEADER] = answered;
  call.send(200, headers, m.bytes);
}

/**
 * The media type a pushed manifest is stored under: its Content-Type, or
 * what the body is when there is none. Every manifest is JSON, and a body
 * that says (by its mediaType field, or its shape) it is another kind of
 * manifest than its Content-Type is refused, as distribution refuses it
 * (https://github.com/opencontainers/image-spec/blob/main/manifest.md: mediaType
 * "MUST" match), so no upstream stores bytes its readers will parse as something else.
 */
function manifestMediaType(sniffed: SniffedManifest | undefined, contentType: string): string {
  if (!sniffed) throw new DistError('MANIFEST_INVALID', 'manifest is not a JSON object of one kind');
  const { doc, mediaType: shape } = sniffed;
  if (!contentType) return shape;
  if (isManifestMediaType(contentType)) {
    const declared = goField(doc as Record<string, unknown>, 'mediaType');
    if (typeof declared === 'string' && declared !== '' ? declared !== contentType : isIndexMediaType(shape) !== isIndexMediaType(contentType)) {
      throw new DistError('MANIFEST_INVALID', `Content-Type ${contentType} does not match the manifest's body`);
    }
  }
  return contentType;
}

export async function putManifest(ctx: GatewayContext, call: Call, repo: string, ref: string): Promise<void> {
  const declared = call.contentLength();
  if (declared !== undefined && declared > DEFAULT_MAX_MANIFEST_BYTES) throw new DistError('SIZE_INVALID', 'manifest over the size limit');
  const bytes = await call.readBody(DEFAULT_MAX_MANIFEST_BYTES, 'manifest');
  call.bytesIn += bytes.length;
  const digest = digestBytes(bytes, isDigest(ref) ? algorithmOf(ref) : 'sha256');
  if (isDigest(ref) && digest !== ref) throw new DistError('DIGEST_INVALID', 'manifest bytes do not match the digest in the path');
  // Parsed once, for both the media type check and the cache check.
  const sniffed = sniffManifest(bytes);
  const mediaType = manifestMediaType(sniffed, call.header('content-type')?.split(';')[0]?.trim() ?? '');
  let stored: ManifestRead = { mediaType, digest, bytes };
  const cache = cacheOfSniffed(sniffed!);
  if (cache) {
    // The upstream must never hold a cache manifest that names what the repository lacks.
    for (const d of [cache.config, ...cache.layers]) {
      if (Array.isArray(d.urls) && d.urls.length) continue;
      if ((await ctx.upstream.blobSize(repo, d.digest, call.signal)) === undefined) throw new DistError('MANIFEST_BLOB_UNKNOWN', `cache manifest names ${d.digest}, which ${repo} lacks`);
    }
    if (ctx.cfg.imageManifestOnly && cache.shape === 'index') {
      const im = toImageManifest(cache);
      stored = { mediaType: im.mediaType, digest: digestBytes(im.bytes), bytes: im.bytes };
    }
  }
  // Pushed by digest and converted: stored under its own digest (the tag form is what caches use).
  const target = isDigest(ref) ? stored.digest : putTarget(ctx, repo, ref, digest, !!cache);
  await ctx.upstream.putManifest(repo, target, stored, call.signal);
  await afterPut(ctx, call, repo, ref, target);
  // containerd checks that this is the digest of the bytes it sent, whatever was stored.
  call.send(201, { location: `/v2/${repo}/manifests/${digest}`, 'docker-content-digest': digest });
}

export async function deleteManifest(ctx: GatewayContext, call: Call, repo: string, ref: string): Promise<void> {
  if (!isDigest(ref)) throw new DistError('UNSUPPORTED', 'tags are deleted by deleting their manifest by digest');
  if (!(await ctx.upstream.deleteManifest(repo, ref, call.signal))) throw new DistError('MANIFEST_UNKNOWN');
  call.send(202, {});
}
