// What the gateway needs from the place it stores into: a registry (through
// the project's registry client) or the embedded store. Repositories here are
// gateway names; each upstream maps them to its own (prefix, directory).
import type { Readable } from 'node:stream';
import type { HashState } from '../upload-hash.js';

export interface ManifestRead {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

export interface BlobRead {
  /** 200 for the whole blob, 206 for a range. */
  status: 200 | 206;
  size: number;
  /** "bytes a-b/size" for a 206. */
  contentRange?: string;
  length: number;
  body: Readable;
}

/** How long an upload location is good for (sealed into it); registries purge their sessions within days. */
export const UPLOAD_TTL_SECONDS = 24 * 3600;

/**
 * Where an upload stands; JSON, sealed into the Location the client gets.
 * A registry session also carries the hash of its `off` bytes (upload-hash.ts):
 * the upstream's own session cannot be read back to verify the digest at the end.
 */
export type UploadState = { kind: 'registry'; loc: string; off: number; h?: HashState } | { kind: 'local'; id: string; off: number };

export interface Upstream {
  /** The resource name grants are matched against ("host/prefix/repo", "local/repo"). */
  nameOf(repo: string): string;
  /** The gateway repository of an upstream resource name, when this upstream holds it. */
  repoOf(name: string): string | undefined;

  getManifest(repo: string, ref: string, accept: string, signal?: AbortSignal): Promise<ManifestRead | undefined>;
  putManifest(repo: string, ref: string, m: ManifestRead, signal?: AbortSignal): Promise<void>;
  /** FAILED_PRECONDITION reason delete-unsupported when the upstream refuses deletes. */
  deleteManifest(repo: string, digest: string, signal?: AbortSignal): Promise<boolean>;

  /** Size of a blob linked to this repository; undefined when absent. */
  blobSize(repo: string, digest: string, signal?: AbortSignal): Promise<number | undefined>;
  /** A blob of this repository, from `range` ("bytes=a-b") when given; undefined when absent. */
  getBlob(repo: string, digest: string, range: string | undefined, signal?: AbortSignal): Promise<BlobRead | 'range-invalid' | undefined>;
  deleteBlob(repo: string, digest: string, signal?: AbortSignal): Promise<boolean>;

  /** `algorithm`: what the final digest will use when the client said (POST ?digest-algorithm=); sha256 otherwise. */
  startUpload(repo: string, signal?: AbortSignal, algorithm?: string): Promise<UploadState>;
  /** Links a blob of `from` into `repo`; false when it could not (the caller then starts an upload). */
  mount(repo: string, digest: string, from: string, signal?: AbortSignal): Promise<boolean>;
  /** Appends a body at the state's offset; the new state. */
  appendUpload(repo: string, st: UploadState, body: Readable, length: number | undefined, signal?: AbortSignal): Promise<UploadState>;
  /**
   * Completes an upload with an optional last body; the digest of every byte
   * of the upload is verified before the content is committed upstream
   * (DATA_LOSS otherwise, and the session is over).
   */
  finishUpload(repo: string, st: UploadState, digest: string, body: Readable | undefined, length: number | undefined, signal?: AbortSignal): Promise<void>;
  /**
   * The state as the upstream holds it now (its offset); NOT_FOUND when the
   * session is gone, FAILED_PRECONDITION upload-unverifiable when it can no
   * longer be verified (the session is then cancelled).
   */
  uploadStatus(repo: string, st: UploadState, signal?: AbortSignal): Promise<UploadState>;
  /** Ends a session; false when the upstream did not hold it (already finished, cancelled or purged). */
  cancelUpload(repo: string, st: UploadState): Promise<boolean>;

  /** All tags, sorted; undefined when the repository does not exist. */
  tags(repo: string, signal?: AbortSignal): Promise<string[] | undefined>;
  /** Every repository, as gateway names. */
  catalog(signal?: AbortSignal): Promise<string[]>;

  close(): Promise<void>;
}
