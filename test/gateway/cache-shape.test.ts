import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheManifestOf, toImageManifest } from '../../src/gateway/cache-shape.js';
import { BK } from '../fixtures.js';

const blob = (fixture: string, digest: string) => readFileSync(path.join(BK, fixture, 'blobs/sha256', digest.slice(7)));
const topOf = (fixture: string) => JSON.parse(readFileSync(path.join(BK, fixture, 'index.json'), 'utf8')).manifests[0].digest as string;

describe('cacheManifestOf', () => {
  it('finds the cache in both shapes and nothing in an image', () => {
    const idx = cacheManifestOf(blob('registry-index-oci-max', topOf('registry-index-oci-max')));
    expect(idx?.shape).toBe('index');
    expect(idx?.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(idx?.layers).toHaveLength(8);
    expect(cacheManifestOf(blob('registry-imagemanifest-max', topOf('registry-imagemanifest-max')))?.shape).toBe('image-manifest');
    expect(cacheManifestOf(blob('inline-image', topOf('inline-image')))).toBeUndefined();
    expect(cacheManifestOf(Buffer.from('not json'))).toBeUndefined();
    expect(cacheManifestOf(Buffer.from('{"manifests":[{"mediaType":"application/vnd.buildkit.cacheconfig.v0"}]}'))).toBeUndefined();
  });

  it('converts an index cache to the image-manifest BuildKit writes for the same cache', () => {
    // BuildKit wrote the same build in both shapes: the conversion gives its image-manifest bytes.
    const idx = cacheManifestOf(blob('registry-index-oci-max', topOf('registry-index-oci-max')))!;
    const im = toImageManifest(idx);
    expect(im.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const want = blob('registry-imagemanifest-max', topOf('registry-imagemanifest-max'));
    expect(im.bytes.toString()).toBe(want.toString());
  });

  it('moves Docker layer media types to the OCI family, annotations kept', () => {
    const idx = cacheManifestOf(blob('registry-index-docker-min', topOf('registry-index-docker-min')))!;
    const doc = JSON.parse(toImageManifest(idx).bytes.toString());
    for (const [i, l] of doc.layers.entries()) {
      expect(l.mediaType).toMatch(/^application\/vnd\.oci\.image\.layer\.v1\.tar/);
      expect(l.annotations).toEqual(idx.layers[i]!.annotations);
    }
  });
});
