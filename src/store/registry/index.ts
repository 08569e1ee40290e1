// The `type=registry` backend: a ContentStore bound to one repository of an
// OCI distribution registry (https://github.com/opencontainers/distribution-spec).
// Layout follows oras-go's registry/remote: this file routes by media type,
// blobs.ts and manifests.ts speak the API, client.ts does HTTP, auth and retries.
import { Readable } from 'node:stream';
import { BkError, dataLoss, invalidArgument, isNotFound } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { digestBytes, isDigest, parseDigest } from '../../oci/digest.js';
import { isManifestMediaType } from '../../oci/media-types.js';
import { parseReferenceLoose, validateTag } from '../../oci/reference.js';
import { readAll } from '../content.js';
import type { ContentStore, FetchOptions, PushOptions, PushResult } from '../types.js';
import { chainCredentials, staticCredentials, type CredentialProvider, type Credentials } from './auth/credentials.js';
import { dockerConfigCredentials } from './auth/docker-config.js';
import { fetchBlob } from './blob-fetch.js';
import { blobExists, deleteBlob, mountBlob, cancelUpload, pushBlob } from './blobs.js';
import { RegistryClient, type RegistryClientOptions, type RegistryTimeouts } from './client.js';
import { RegistryError } from './errcode/index.js';
import { resolveEndpoint, type HostSettings } from './hosts.js';
import {
  DEFAULT_MAX_MANIFEST_BYTES,
  deleteManifest,
  getManifest,
  headManifest,
  ManifestCache,
  manifestTooLarge,
  putManifest,
} from './manifests.js';
import type { RepoContext } from './repo.js';
import { listTags } from './tags.js';
import type { RetryOptions } from './retry/policy.js';
import { Source, type BlobSource } from './source.js';

export type { BlobSource } from './source.js';
export type { HostSettings } from './hosts.js';
export type { Credentials, CredentialProvider } from './auth/credentials.js';
export { DEFAULT_TIMEOUTS, RegistryClient, type RegistryTimeouts } from './client.js';
export { RegistryError } from './errcode/index.js';

export interface RegistryStoreOptions {
  /** Plain HTTP for this store's registry (buildctl's `registry.insecure=true`). */
  insecure?: boolean;
  /** Per-host settings by host[:port]; an entry wins over the store-wide values. */
  hosts?: Record<string, HostSettings>;
  /**
   * Explicit credentials (one set, or a map by registry host), or a provider.
   * Tried before the Docker config file.
   */
  credentials?: Credentials | Record<string, Credentials> | CredentialProvider;
  /**
   * Docker config.json to read credentials from: a path, or false to not
   * read one. Default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
   */
  dockerConfig?: string | false;
  /** Blob transfers in flight per registry host (default 4). */
  maxConcurrency?: number;
  /** Chunked PATCH uploads of this size (at least 5 MiB) instead of one streaming PUT. */
  chunkSize?: number;
  /** Largest manifest read or written (default 4 MiB). */
  maxManifestBytes?: number;
  /** Retry budget (defaults: 5 attempts, 250 ms base, 10 s step cap, 120 s in all). */
  retry?: Partial<RetryOptions>;
  /** How long to wait in each phase of a request (defaults: DEFAULT_TIMEOUTS in client.ts). */
  timeouts?: Partial<RegistryTimeouts>;
  /** HTTP client tuning, used when this store creates its own client. */
  http?: Omit<RegistryClientOptions, 'credentials' | 'retry' | 'timeouts'>;
  /**
   * A client to share with other stores (pools, tokens, transfer limits).
   * Its credentials and retry settings apply; this store's are ignored. Not
   * closed by close().
   */
  client?: RegistryClient;
}

/** Push options of this backend: the common ones plus a mount source. */
export interface RegistryPushOptions extends PushOptions {
  /** Try a cross-repository mount from this repository of the same registry first. */
  mountFrom?: string;
}

function credentialProvider(opts: RegistryStoreOptions): CredentialProvider {
  const explicit = typeof opts.credentials === 'function' ? opts.credentials : opts.credentials ? staticCredentials(opts.credentials) : undefined;
  const file = opts.dockerConfig === false ? undefined : dockerConfigCredentials(opts.dockerConfig);
  return chainCredentials(explicit, file);
}

export class RegistryStore implements ContentStore {
  readonly location: string;
  readonly registry: string;
  readonly repository: string;
  private readonly ctx: RepoContext;
  private readonly ownsClient: boolean;
  private readonly recent = new ManifestCache();

  /**
   * @param repo "host[:port]/path" (a tag or digest, if any, is ignored) or
   *   its parts. Docker Hub names are normalized ("alpine" → docker.io/library/alpine).
   */
  constructor(repo: string | { registry: string; repository: string }, opts: RegistryStoreOptions = {}) {
    const ref = typeof repo === 'string' ? parseReferenceLoose(repo) : parseReferenceLoose(`${repo.registry}/${repo.repository}`);
    this.registry = ref.registry;
    this.repository = ref.repository;
    this.location = `registry:${ref.registry}/${ref.repository}`;
    const endpoint = resolveEndpoint(ref.registry, opts);
    const maxManifestBytes = opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    if (!Number.isInteger(maxManifestBytes) || maxManifestBytes <= 0) throw invalidArgument('maxManifestBytes must be a positive integer');
    this.ownsClient = !opts.client;
    const client = opts.client ?? new RegistryClient({ ...opts.http, credentials: credentialProvider(opts), retry: opts.retry, timeouts: opts.timeouts });
    this.ctx = {
      client,
      endpoint,
      repository: ref.repository,
      location: this.location,
      limiter: client.limiter(endpoint.host, endpoint.settings.maxConcurrency),
      maxManifestBytes,
    };
  }

  async exists(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    parseDigest(desc.digest);
    if (isManifestMediaType(desc.mediaType)) return (await headManifest(this.ctx, desc.digest, opts.signal)) !== undefined;
    return blobExists(this.ctx, desc, opts.signal);
  }

  /**
   * Streams content, verified while read (size, and digest from offset 0).
   * Manifests come from the manifests endpoint and are checked before the
   * stream is returned. NOT_FOUND when the registry answers 404.
   */
  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    parseDigest(desc.digest);
    const offset = opts.offset ?? 0;
    if (isManifestMediaType(desc.mediaType)) {
      const tooLarge = manifestTooLarge(this.ctx, desc);
      if (tooLarge) throw tooLarge;
      // Always asks the registry (not the tag cache): fetch must reflect what is stored.
      const m = await getManifest(this.ctx, desc.digest, desc, opts.signal);
      if (offset < 0 || offset > m.bytes.length) throw invalidArgument(`offset ${offset} is outside ${desc.digest}`, { reason: 'bad-offset' });
      return Readable.from([m.bytes.subarray(offset)], { objectMode: false });
    }
    return fetchBlob(this.ctx, desc, offset, opts.signal);
  }

  /**
   * Stores content under its digest: manifests and indexes (by media type)
   * with PUT /manifests/<digest>, everything else (layers, the BuildKit
   * cache config) as blobs. Skips content the registry already has without
   * reading it. Verifies size and digest while streaming (DATA_LOSS).
   *
   * `content` may be bytes, a function returning a fresh stream, or a plain
   * Readable. A plain Readable can be read only once, so an upload that
   * breaks in a way the registry cannot resume fails (UNAVAILABLE,
   * reason "not-restartable") instead of starting over; pass a function to
   * allow restarts.
   */
  async push(desc: Descriptor, content: BlobSource, opts: RegistryPushOptions = {}): Promise<PushResult> {
    parseDigest(desc.digest);
    if (!Number.isInteger(desc.size) || desc.size < 0) throw invalidArgument(`bad size ${desc.size} for ${desc.digest}`);
    if (!isManifestMediaType(desc.mediaType)) return pushBlob(this.ctx, desc, content, opts);

    const tooLarge = manifestTooLarge(this.ctx, desc);
    if (tooLarge) throw tooLarge;
    if (await headManifest(this.ctx, desc.digest, opts.signal)) return { outcome: 'exists', bytes: 0 };
    const bytes = await readAll(await new Source(content).open(), this.ctx.maxManifestBytes, desc.digest);
    if (bytes.length !== desc.size) throw dataLoss(`manifest ${desc.digest} has ${bytes.length} bytes, descriptor says ${desc.size}`, { reason: 'size-mismatch' });
    const got = digestBytes(bytes, parseDigest(desc.digest).algorithm);
    if (got !== desc.digest) throw dataLoss(`digest mismatch: expected ${desc.digest}, got ${got}`, { reason: 'digest-mismatch' });
    const m = { mediaType: desc.mediaType, digest: desc.digest, bytes };
    await putManifest(this.ctx, desc.digest, m, opts.signal);
    this.recent.put(m);
    opts.onProgress?.(bytes.length);
    return { outcome: 'uploaded', bytes: bytes.length };
  }

  /** Resolves a tag (or a digest) to its manifest's descriptor; NOT_FOUND when absent. */
  async resolve(reference: string, opts: { signal?: AbortSignal } = {}): Promise<Descriptor> {
    if (!isDigest(reference)) validateTag(reference);
    const d = await headManifest(this.ctx, reference, opts.signal);
    if (!d) throw this.manifestUnknown(reference);
    return d;
  }

  /** NOT_FOUND for a tag or digest this repository does not have (resolve and readManifest alike). */
  private manifestUnknown(reference: string, cause?: unknown): BkError {
    return new BkError('NOT_FOUND', `${this.location}${isDigest(reference) ? '@' : ':'}${reference}: not found`, { reason: 'manifest-unknown', cause });
  }

  /**
   * Resolves a tag (or a digest) and reads its manifest in one GET, for a
   * caller that needs the bytes anyway: a HEAD first would cost the registry
   * a second manifest lookup (and a round trip) for the same answer. The
   * bytes are checked against the digest asked for and Docker-Content-Digest
   * (getManifest); NOT_FOUND as resolve() says it.
   */
  async readManifest(reference: string, opts: { signal?: AbortSignal } = {}): Promise<{ desc: Descriptor; bytes: Buffer }> {
    if (!isDigest(reference)) validateTag(reference);
    try {
      const m = await getManifest(this.ctx, reference, undefined, opts.signal);
      return { desc: { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length }, bytes: m.bytes };
    } catch (err) {
      if (isNotFound(err)) throw this.manifestUnknown(reference, err);
      throw err;
    }
  }

  /**
   * Points `tag` at a pushed manifest by PUTting the same bytes under the
   * tag (the distribution API has no other way). Bytes pushed through this
   * store are reused from memory; others are fetched and verified first.
   */
  async tag(desc: Descriptor, tag: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    validateTag(tag);
    parseDigest(desc.digest);
    if (!isManifestMediaType(desc.mediaType)) throw invalidArgument(`cannot tag ${desc.digest}: ${desc.mediaType} is not a manifest type`, { reason: 'not-a-manifest' });
    const m = this.recent.get(desc.digest) ?? (await getManifest(this.ctx, desc.digest, desc, opts.signal));
    await putManifest(this.ctx, tag, { ...m, mediaType: desc.mediaType }, opts.signal);
    this.recent.put(m);
  }

  /**
   * Mounts a blob from another repository of the same registry. False when
   * the registry declined (it then opened an upload session, which we cancel).
   */
  async mount(desc: Descriptor, fromRepository: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    parseDigest(desc.digest);
    const from = parseReferenceLoose(`${this.registry}/${fromRepository}`).repository;
    const r = await mountBlob(this.ctx, desc, from, opts.signal);
    if (!r.mounted) await cancelUpload(this.ctx, r.location);
    return r.mounted;
  }

  /**
   * Deletes a manifest (by digest) or a blob. Registries that do not allow
   * deletes answer 405 or UNSUPPORTED: that becomes FAILED_PRECONDITION with
   * reason "delete-unsupported", so callers can tell it from a failure.
   */
  async delete(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<void> {
    parseDigest(desc.digest);
    try {
      if (isManifestMediaType(desc.mediaType)) {
        await deleteManifest(this.ctx, desc.digest, opts.signal);
        this.recent.delete(desc.digest);
      } else {
        await deleteBlob(this.ctx, desc, opts.signal);
      }
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 405 || err.codes.includes('UNSUPPORTED'))) {
        throw new RegistryError('FAILED_PRECONDITION', `${this.location} does not allow deletes: ${err.message}`, err.status, [...err.codes], {
          cause: err,
          reason: 'delete-unsupported',
        });
      }
      throw err;
    }
  }

  /** The repository's tags (tags/list, every page; `pageSize` tags a request). */
  async tags(opts: { signal?: AbortSignal; pageSize?: number } = {}): Promise<string[]> {
    return listTags(this.ctx, opts.signal, opts.pageSize);
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.ctx.client.close();
  }
}
