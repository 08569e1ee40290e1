import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { inlineCacheFromImage, INLINE_CACHE_KEY } from '../../src/cache/inline.js';
import { digestBytes } from '../../src/oci/digest.js';
import type { ImageManifest } from '../../src/oci/manifest.js';

const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestBytes('layer'), size: 5 };
const manifest: ImageManifest = {
  schemaVersion: 2,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestBytes('cfg'), size: 3 },
  layers: [layer],
};
const records = `[{"digest":"${digestBytes('rec')}","layers":[{"layer":0,"createdAt":"2024-01-01T00:00:00Z"}]}]`;

function image(cache: string): Buffer {
  return Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [digestBytes('diff')] }, [INLINE_CACHE_KEY]: cache }));
}

describe('inline cache of an image config', () => {
  it('reads padded base64 with line breaks, as Go\'s base64.StdEncoding for a []byte field', () => {
    const b64 = Buffer.from(records).toString('base64');
    const { part } = inlineCacheFromImage(manifest, image(b64.slice(0, 8) + '\r\n' + b64.slice(8)));
    expect(part?.config.records).toHaveLength(1);
    expect(part?.config.layers).toEqual([{ blob: layer.digest, parent: -1 }]);
  });
  it('refuses base64 without its padding, which Go refuses (illegal base64 data), instead of decoding a prefix', () => {
    // The records padded to a length that needs "=" padding, then the padding dropped.
    const text = records + ' '.repeat((3 - (records.length % 3)) % 3 === 0 ? 1 : 0);
    const b64 = Buffer.from(text).toString('base64');
    expect(b64.endsWith('=')).toBe(true);
    for (const unpadded of [b64.replace(/=+$/, ''), b64 + 'Q', 'QQ', 'QUJD\nQ']) {
      expect(() => inlineCacheFromImage(manifest, image(unpadded)), unpadded.slice(-8)).toThrow(BkError);
      expect(() => inlineCacheFromImage(manifest, image(unpadded))).toThrow(/not base64/);
    }
  });
});
