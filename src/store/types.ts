// The one storage interface the cache core sees, modelled on oras-go's
// content.Storage + TagResolver. Backends live in one folder each (local/,
// registry/) and register by the `type=` name of buildctl's cache specs.
import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.js';

export interface FetchOptions {
  /** Start reading at this byte offset (a Range request on registries). */
  offset?: number;
  signal?: AbortSignal;
}

export interface PushOptions {
  signal?: AbortSignal;
  /** Called with the number of bytes sent so far, for progress bars. */
  onProgress?: (sent: number) => void;
}

/** How a push was satisfied; used for export statistics. */
export type PushOutcome = 'uploaded' | 'exists' | 'mounted';

export interface PushResult {
  outcome: PushOutcome;
  /** Bytes actually transferred (0 unless uploaded). */
  bytes: number;
}

/** Reads content by descriptor. A ContentStore is one; so is a blob stream from a client. */
export interface Fetcher {
  /** Streams the content. Rejects with a NOT_FOUND BkError when absent. */
  fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable>;
}

export interface ContentStore extends Fetcher {
  /** "local:/path" or "registry:host/repo", for messages and logs. Never holds credentials. */
  readonly location: string;

  /** Registry host ("ghcr.io", "127.0.0.1:5000") for registry stores; lets exports mount between repos. */
  readonly registry?: string;
  /** Repository path within the registry ("org/cache"). */
  readonly repository?: string;

  exists(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<boolean>;

  /**
   * Stores content, verifying digest and size while streaming. Manifests
   * (by media type) go where the backend keeps manifests. Existing content
   * is skipped without reading `content`.
   */
  push(desc: Descriptor, content: Readable | Uint8Array, opts?: PushOptions): Promise<PushResult>;

  /** Resolves a tag (or a digest) to the manifest descriptor. NOT_FOUND when absent. */
  resolve(reference: string, opts?: { signal?: AbortSignal }): Promise<Descriptor>;

  /** Points `tag` at a manifest already pushed. */
  tag(desc: Descriptor, tag: string, opts?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Optional: makes a blob available by mounting it from another repository
   * of the same registry. Resolves false when the registry asked for an upload.
   */
  mount?(desc: Descriptor, fromRepository: string, opts?: { signal?: AbortSignal }): Promise<boolean>;

  /** Optional: deletes content (manifests by digest, blobs). */
  delete?(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Optional: claims blobs for the length of an export so that a concurrent
   * garbage collection keeps them even before a tag reaches them.
   */
  lease?(): Promise<{ add(digest: string): Promise<void>; release(): Promise<void> }>;

  /** Releases connections and locks. */
  close?(): Promise<void>;
}
