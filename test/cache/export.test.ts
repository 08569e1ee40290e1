import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCacheManifest, shapeOptions, type ShapeOptions } from '../../src/cache/export.js';
import { CacheGraph } from '../../src/cache/graph.js';
import { BkError } from '../../src/errors.js';
import { MT } from '../../src/oci/media-types.js';
import { BK, readmeSummaries } from '../fixtures.js';
import { graphOf } from './helpers.js';
import { layerDesc } from './random-graph.js';

const ownShape: Record<string, ShapeOptions> = {
  [MT.ociIndex]: { imageManifest: false, ociMediatypes: true },
  [MT.dockerManifestList]: { imageManifest: false, ociMediatypes: false },
  [MT.ociManifest]: { imageManifest: true, ociMediatypes: true },
};

describe('export shapes', () => {
  for (const [name, s] of readmeSummaries()) {
    if (s.kind === 'inline') continue;
    it(`${name} re-exported in its own shape gives BuildKit's manifest digest`, async () => {
      const g = await graphOf(path.join(BK, name));
      const { config, descriptors } = g.marshal();
      const built = buildCacheManifest(config, descriptors, ownShape[s.mediaType]!);
      expect(built.config.desc.digest).toBe(s.config);
      expect(built.manifest.desc).toMatchObject({ mediaType: s.mediaType, digest: s.manifest });
    });
  }

  it('index: config descriptor last; image manifest: config; no annotations or artifactType', async () => {
    const g = await graphOf(path.join(BK, 'registry-index-docker-min'));
    const { config, descriptors } = g.marshal();
    const idx = JSON.parse(buildCacheManifest(config, descriptors, shapeOptions({})).manifest.bytes.toString());
    expect(idx.mediaType).toBe(MT.ociManifest);
    expect(idx.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(idx.annotations).toBeUndefined();
    expect(idx.artifactType).toBeUndefined();
    for (const l of idx.layers) {
      expect(l.mediaType).toBe(MT.ociLayerGzip); // converted from Docker's gzip type
      expect(Object.keys(l.annotations).sort()).toEqual(['buildkit/createdat', 'containerd.io/uncompressed']);
    }
    const list = JSON.parse(buildCacheManifest(config, descriptors, shapeOptions({ 'oci-mediatypes': 'false' })).manifest.bytes.toString());
    expect(list.mediaType).toBe(MT.dockerManifestList);
    expect(list.manifests.at(-1).mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(list.manifests.slice(0, -1).every((m: { mediaType: string }) => m.mediaType === MT.dockerLayerGzip)).toBe(true);
  });

  it('converts zstd layers to the Docker family and back', async () => {
    const g = await graphOf(path.join(BK, 'registry-imagemanifest-zstd-max'));
    const { config, descriptors } = g.marshal();
    const list = JSON.parse(buildCacheManifest(config, descriptors, { imageManifest: false, ociMediatypes: false }).manifest.bytes.toString());
    expect(new Set(list.manifests.slice(0, -1).map((m: { mediaType: string }) => m.mediaType))).toEqual(new Set([MT.dockerLayerZstd]));
  });

  it("refuses a layer without containerd.io/uncompressed, since BuildKit can't import it", () => {
    const g = new CacheGraph();
    const { annotations: _a, ...bare } = layerDesc(1);
    g.add('sha256:' + 'a'.repeat(64)).addResult('2026-01-01T00:00:00Z', [bare]);
    const { config, descriptors } = g.marshal();
    expect(() => buildCacheManifest(config, descriptors, shapeOptions({}))).toThrow(/containerd.io\/uncompressed/);
  });

  it('warns when the config or manifest passes BuildKit 1 MiB import limit', () => {
    const g = new CacheGraph();
    for (let i = 0; i < 12000; i++) g.add('sha256:' + i.toString(16).padStart(64, '0')).addResult('2026-01-01T00:00:00Z', [layerDesc(i % 3)]);
    const { config, descriptors } = g.marshal();
    const built = buildCacheManifest(config, descriptors, shapeOptions({}));
    expect(built.config.bytes.length).toBeGreaterThan(1 << 20);
    expect(built.warnings.join('\n')).toMatch(/cache config is \d+ bytes: BuildKit will refuse/);
  });
});

describe('shape options follow current BuildKit', () => {
  it('defaults: OCI media types and the image manifest', () => {
    expect(shapeOptions({})).toEqual({ imageManifest: true, ociMediatypes: true });
    expect(shapeOptions({ 'oci-mediatypes': 'false' })).toEqual({ imageManifest: false, ociMediatypes: false });
    expect(shapeOptions({ 'image-manifest': 'false' })).toEqual({ imageManifest: false, ociMediatypes: true });
    expect(shapeOptions({ 'image-manifest': 'True', 'oci-mediatypes': '1' })).toEqual({ imageManifest: true, ociMediatypes: true });
  });
  it('image-manifest without OCI media types is INVALID_ARGUMENT', () => {
    try {
      shapeOptions({ 'image-manifest': 'true', 'oci-mediatypes': 'false' });
      expect.unreachable();
    } catch (err) {
      expect((err as BkError).code).toBe('INVALID_ARGUMENT');
      expect((err as BkError).message).toMatch(/OCI media types are required for the image-manifest cache format/);
    }
  });
  it('rejects non-boolean values', () => {
    expect(() => shapeOptions({ 'image-manifest': 'yes' })).toThrow(/invalid boolean/);
  });
});

describe('export size limits', () => {
  it('refuses a config over the 16 MiB an import reads, before anything is written', () => {
    // Go's JSON escapes '<' as \u003c: 3 MiB of selectors become an 18 MiB config.
    const g = new CacheGraph();
    const base = g.add(`sha256:${'1'.repeat(64)}`);
    const top = g.add(`sha256:${'2'.repeat(64)}`);
    for (let i = 0; i < 3; i++) top.linkFrom(base, 0, `${i}`.padEnd(1 << 20, '<'));
    base.addResult('', [layerDesc(1)]);
    top.addResult('', [layerDesc(1), layerDesc(2)]);
    const { config, descriptors } = g.marshal();
    let err: BkError | undefined;
    try {
      buildCacheManifest(config, descriptors, { imageManifest: true, ociMediatypes: true });
    } catch (e) {
      err = e as BkError;
    }
    expect([err?.code, err?.reason]).toEqual(['RESOURCE_EXHAUSTED', 'graph-too-large']);
  });
});
