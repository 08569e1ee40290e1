// Inline cache: records stored in an image config under moby.buildkit.cache.v0
// (base64 JSON of the records array), with layer indexes into the image's own
// layers. Reading follows BuildKit's importInlineCache in
// cache/remotecache/import.go: layers chain base first (parent = i-1), diffIDs
// come from rootfs.diff_ids, created and description from non-empty history.
import { invalidArgument } from '../errors.js';
import { ANNOTATION_CREATED_AT, ANNOTATION_DESCRIPTION, ANNOTATION_UNCOMPRESSED, type Descriptor } from '../oci/descriptor.js';
import { canonicalGoTime, goArray, goBytes, goField, goObject, goStr, isObject, parseJsonBytes } from '../oci/go-json.js';
import type { ImageManifest } from '../oci/manifest.js';
import { decodeRecord, type CacheConfig } from './config.js';
import type { DescriptorMap } from './parse.js';

export const INLINE_CACHE_KEY = 'moby.buildkit.cache.v0';

export interface InlinePart {
  config: CacheConfig;
  provider: DescriptorMap;
}

/** created/created_by of the history entries that made a layer. */
function layerHistory(img: Record<string, unknown>): { dates: string[]; createdBy: string[] } {
  const dates: string[] = [];
  const createdBy: string[] = [];
  for (const [i, h] of goArray(goField(img, 'history'), 'history').entries()) {
    const o = goObject(h, `history[${i}]`) ?? {};
    if (goField(o, 'empty_layer') === true) continue;
    const created = goField(o, 'created');
    dates.push(typeof created === 'string' ? canonicalGoTime(created) : '');
    createdBy.push(goStr(goField(o, 'created_by'), `history[${i}].created_by`));
  }
  return { dates, createdBy };
}

/**
 * Builds a cache config from one image. Returns undefined, with a reason,
 * when the image carries no usable inline cache.
 */
export function inlineCacheFromImage(
  manifest: ImageManifest,
  imageConfig: Uint8Array,
): { part?: InlinePart; skipped?: string } {
  const img = parseJsonBytes(imageConfig, 'image config');
  if (!isObject(img)) throw invalidArgument('image config is not a JSON object', { reason: 'malformed-image-config' });
  const rootfs = goObject(goField(img, 'rootfs'), 'rootfs') ?? {};
  const diffIDs = goArray(goField(rootfs, 'diff_ids'), 'rootfs.diff_ids').map((d) => goStr(d, 'rootfs.diff_ids'));
  if (diffIDs.length !== manifest.layers.length) {
    return { skipped: 'invalid image with mismatching manifest and config' };
  }
  const raw = goField(img, INLINE_CACHE_KEY);
  if (raw === undefined || raw === null) return { skipped: 'image has no inline cache' };
  // A []byte field: strict base64 as Go reads it (goBytes).
  const cache = goBytes(raw, INLINE_CACHE_KEY);
  const records = goArray(parseJsonBytes(Buffer.from(cache, 'base64'), INLINE_CACHE_KEY), INLINE_CACHE_KEY).map((r, i) =>
    decodeRecord(r, `${INLINE_CACHE_KEY}[${i}]`),
  );
  const { dates, createdBy } = layerHistory(img);
  const config: CacheConfig = { layers: [], records };
  const provider: DescriptorMap = new Map();
  manifest.layers.forEach((l, i) => {
    const annotations: Record<string, string> = { ...(l.annotations ?? {}) };
    if (dates[i]) annotations[ANNOTATION_CREATED_AT] = dates[i]!;
    if (createdBy[i]) annotations[ANNOTATION_DESCRIPTION] = createdBy[i]!;
    annotations[ANNOTATION_UNCOMPRESSED] = diffIDs[i]!;
    const desc: Descriptor = { ...l, annotations };
    provider.set(l.digest, desc);
    config.layers.push({ blob: l.digest, parent: i - 1 });
  });
  return { part: { config, provider } };
}
