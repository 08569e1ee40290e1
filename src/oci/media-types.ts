// Media types of the OCI image spec and Docker's schema 2, plus BuildKit's own.
// https://github.com/opencontainers/image-spec/blob/main/media-types.md
// https://distribution.github.io/distribution/spec/manifest-v2-2/

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayout: 'application/vnd.oci.layout.header.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  buildkitCacheConfig: 'application/vnd.buildkit.cacheconfig.v0',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerManifestList];

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt !== undefined && MANIFEST_MEDIA_TYPES.includes(mt);
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MT.ociIndex || mt === MT.dockerManifestList;
}

type Compression = 'uncompressed' | 'gzip' | 'zstd';

// Both families of each compression, as BuildKit's util/compression maps them.
const FAMILIES: Record<Compression, { oci: string; docker: string }> = {
  uncompressed: { oci: MT.ociLayer, docker: MT.dockerLayer },
  gzip: { oci: MT.ociLayerGzip, docker: MT.dockerLayerGzip },
  zstd: { oci: MT.ociLayerZstd, docker: MT.dockerLayerZstd },
};

export function layerCompression(mt: string): Compression | undefined {
  for (const [c, fam] of Object.entries(FAMILIES) as [Compression, { oci: string; docker: string }][]) {
    if (mt === fam.oci || mt === fam.docker) return c;
  }
  return undefined;
}

/**
 * Converts a layer media type to the OCI or Docker family, as BuildKit's
 * compression.ConvertAllLayerMediaTypes does. Unknown types pass through
 * unchanged (BuildKit only logs them).
 */
export function convertLayerMediaType(mt: string, oci: boolean): string {
  const c = layerCompression(mt);
  if (!c) return mt;
  return oci ? FAMILIES[c].oci : FAMILIES[c].docker;
}
