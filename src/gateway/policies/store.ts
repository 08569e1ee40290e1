// One gateway repository as a ContentStore, so the cache core (loadCache,
// verify, pushCache) reads and writes the upstream through the same Upstream
// the gateway serves from: the registry's per-repository links, the embedded
// store's directories, the daemon's credentials. Nothing here trusts the
// upstream: reads go through the core's verified streams and size limits.
import { Readable } from 'node:stream';
import { notFound } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { MANIFEST_MEDIA_TYPES, isManifestMediaType } from '../../oci/media-types.js';
import { readAll, toReadable } from '../../store/content.js';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../../store/registry/manifests.js';
import type { ContentStore, FetchOptions, PushResult } from '../../store/types.js';
import type { Upstream } from '../upstream/types.js';

/** Every manifest type, so no upstream down-converts what a merge or repair reads. */
export const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export class UpstreamRepoStore implements ContentStore {
  readonly location: string;

  constructor(
    private readonly upstream: Upstream,
    readonly repo: string,
  ) {
    this.location = `gateway-upstream:${upstream.nameOf(repo)}`;
  }

  async exists(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    if (isManifestMediaType(desc.mediaType)) return (await this.upstream.getManifest(this.repo, desc.digest, ACCEPT, opts.signal)) !== undefined;
    return (await this.upstream.blobSize(this.repo, desc.digest, opts.signal)) !== undefined;
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    if (isManifestMediaType(desc.mediaType)) {
      const m = await this.upstream.getManifest(this.repo, desc.digest, ACCEPT, opts.signal);
      if (!m) throw notFound(`manifest ${desc.digest} not found in ${this.location}`);
      return Readable.from([m.bytes.subarray(opts.offset ?? 0)]);
    }
    // A range from the end is unsatisfiable in HTTP (416); as a store read it is the empty rest.
    if (opts.offset && opts.offset >= desc.size) {
      if (!(await this.exists(desc, opts))) throw notFound(`blob ${desc.digest} not found in ${this.location}`);
      return Readable.from([]);
    }
    const range = opts.offset ? `bytes=${opts.offset}-` : undefined;
    const r = await this.upstream.getBlob(this.repo, desc.digest, range, opts.signal);
    if (r === undefined || r === 'range-invalid') throw notFound(`blob ${desc.digest} not found in ${this.location}`);
    return r.body;
  }

  async push(desc: Descriptor, content: Readable | Uint8Array, opts: { signal?: AbortSignal } = {}): Promise<PushResult> {
    if (await this.exists(desc, opts)) {
      if (!(content instanceof Uint8Array)) content.destroy();
      return { outcome: 'exists', bytes: 0 };
    }
    if (isManifestMediaType(desc.mediaType)) {
      const bytes = content instanceof Uint8Array ? Buffer.from(content) : await readAll(content, DEFAULT_MAX_MANIFEST_BYTES, 'manifest');
      await this.upstream.putManifest(this.repo, desc.digest, { mediaType: desc.mediaType, digest: desc.digest, bytes }, opts.signal);
      return { outcome: 'uploaded', bytes: bytes.length };
    }
    // finishUpload verifies the digest before the upstream commits.
    const st = await this.upstream.startUpload(this.repo, opts.signal);
    await this.upstream.finishUpload(this.repo, st, desc.digest, toReadable(content), desc.size, opts.signal);
    return { outcome: 'uploaded', bytes: desc.size };
  }

  async resolve(reference: string, opts: { signal?: AbortSignal } = {}): Promise<Descriptor> {
    const m = await this.upstream.getManifest(this.repo, reference, ACCEPT, opts.signal);
    if (!m) throw notFound(`${reference} not found in ${this.location}`);
    return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  }

  async tag(desc: Descriptor, tag: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const m = await this.upstream.getManifest(this.repo, desc.digest, ACCEPT, opts.signal);
    if (!m) throw notFound(`manifest ${desc.digest} not found in ${this.location}`);
    await this.upstream.putManifest(this.repo, tag, m, opts.signal);
  }
}
