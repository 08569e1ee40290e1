import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { decodeIndex, detectManifestMediaType, encodeIndex, encodeManifest } from '../../src/oci/manifest.js';
import { MT } from '../../src/oci/media-types.js';
import { convertLayerMediaType } from '../../src/oci/media-types.js';

const D = { mediaType: MT.ociLayerGzip, digest: 'sha256:' + 'a'.repeat(64), size: 1 };

describe('detectManifestMediaType', () => {
  it('uses the shape when mediaType is absent', () => {
    expect(detectManifestMediaType({ manifests: [] })).toBe(MT.dockerManifestList);
    expect(detectManifestMediaType({ config: {}, layers: [] })).toBe(MT.dockerManifest);
    expect(detectManifestMediaType({ layers: [] })).toBe(MT.dockerManifest);
    expect(detectManifestMediaType({})).toBe(MT.dockerManifestList);
  });
  it('refines the shape with a known mediaType', () => {
    expect(detectManifestMediaType({ mediaType: MT.ociIndex, manifests: [] })).toBe(MT.ociIndex);
    expect(detectManifestMediaType({ mediaType: MT.ociManifest, config: {} })).toBe(MT.ociManifest);
    expect(detectManifestMediaType({ mediaType: 'application/x-unknown', manifests: [] })).toBe(MT.dockerManifestList);
  });
  it('rejects ambiguous and contradicting documents with typed errors', () => {
    const bad = [
      { manifests: [], config: {} },
      { mediaType: MT.ociIndex, config: {} },
      { mediaType: MT.ociManifest, manifests: [] },
      'not an object',
      [1, 2],
    ];
    for (const doc of bad) {
      try {
        detectManifestMediaType(doc);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(BkError);
        expect((err as BkError).code).toBe('INVALID_ARGUMENT');
      }
    }
  });
});

describe('encoding', () => {
  it('writes image-spec field order and omits empty fields', () => {
    expect(encodeIndex({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [D] })).toBe(
      `{"schemaVersion":2,"mediaType":"${MT.ociIndex}","manifests":[{"mediaType":"${D.mediaType}","digest":"${D.digest}","size":1}]}`,
    );
    expect(encodeManifest({ schemaVersion: 2, mediaType: MT.ociManifest, config: D, layers: [] })).toBe(
      `{"schemaVersion":2,"mediaType":"${MT.ociManifest}","config":{"mediaType":"${D.mediaType}","digest":"${D.digest}","size":1},"layers":null}`,
    );
  });
  it('drops unknown descriptor fields on decode, as Go does', () => {
    const idx = decodeIndex({ schemaVersion: 2, manifests: [{ ...D, extra: true, annotations: { a: 'b' } }] });
    expect(idx.manifests[0]).toEqual({ ...D, annotations: { a: 'b' } });
  });
  it('rejects descriptors with invalid digests', () => {
    expect(() => decodeIndex({ manifests: [{ digest: 'sha256:xyz', size: 1 }] })).toThrow(/digest/);
  });
});

describe('convertLayerMediaType', () => {
  it('maps docker and OCI families both ways for uncompressed, gzip and zstd', () => {
    const pairs = [
      [MT.dockerLayer, MT.ociLayer],
      [MT.dockerLayerGzip, MT.ociLayerGzip],
      [MT.dockerLayerZstd, MT.ociLayerZstd],
    ];
    for (const [docker, oci] of pairs) {
      expect(convertLayerMediaType(docker!, true)).toBe(oci);
      expect(convertLayerMediaType(oci!, false)).toBe(docker);
      expect(convertLayerMediaType(oci!, true)).toBe(oci);
    }
    expect(convertLayerMediaType('application/x-foreign', true)).toBe('application/x-foreign');
  });
});
