// Moving a built cache into a store: blobs first, then the config, then the
// manifest, then the tag, so a tag never points at content that is missing.
// Blobs the target has are skipped without being read; blobs that live in
// another repository of the same registry are mounted rather than uploaded.
import { BkError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { discard } from '../store/content.js';
import type { ContentStore, Fetcher, PushOutcome } from '../store/types.js';
import type { BuiltCache } from './export.js';

/** Where layer blobs come from: a store, a client stream, several sources. */
export interface BlobSource extends Fetcher {
  /** The store a blob was imported from, when known; enables cross-repo mounts. */
  origin?(digest: string): ContentStore | undefined;
}

export interface TransferStats {
  uploaded: number;
  uploadedBytes: number;
  skipped: number;
  skippedBytes: number;
  mounted: number;
  mountedBytes: number;
}

export type ProgressEvent =
  | { type: 'blob'; digest: string; size: number; status: 'checking' | 'uploading' | PushOutcome; sent?: number }
  | { type: 'config' | 'manifest'; digest: string; size: number; status: PushOutcome }
  | { type: 'tag'; digest: string; tag: string };

export interface TransferOptions {
  tag?: string;
  /** Called once everything is stored, right before the tag moves; throwing leaves the tag as it was. */
  beforeTag?: (manifest: Descriptor) => Promise<void>;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
}

export function emptyStats(): TransferStats {
  return { uploaded: 0, uploadedBytes: 0, skipped: 0, skippedBytes: 0, mounted: 0, mountedBytes: 0 };
}

function count(stats: TransferStats, outcome: PushOutcome, size: number): void {
  if (outcome === 'uploaded') {
    stats.uploaded++;
    stats.uploadedBytes += size;
  } else if (outcome === 'exists') {
    stats.skipped++;
    stats.skippedBytes += size;
  } else {
    stats.mounted++;
    stats.mountedBytes += size;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; the first error stops new work. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new BkError('CANCELLED', 'export cancelled before the manifest was pushed');
}

/** True when `target` can mount blobs from `origin`: another repository of the same registry. */
export function mountable(target: ContentStore, origin: ContentStore | undefined): origin is ContentStore & { repository: string } {
  return (
    !!origin &&
    typeof target.mount === 'function' &&
    !!origin.registry &&
    origin.registry === target.registry &&
    !!origin.repository &&
    origin.repository !== target.repository
  );
}

/** Stores one blob in `target`, reading from `source` only when needed. */
export async function transferBlob(
  target: ContentStore,
  source: BlobSource,
  d: Descriptor,
  opts: TransferOptions = {},
): Promise<PushOutcome> {
  const progress = opts.onProgress;
  progress?.({ type: 'blob', digest: d.digest, size: d.size, status: 'checking' });
  if (await target.exists(d, { signal: opts.signal })) {
    progress?.({ type: 'blob', digest: d.digest, size: d.size, status: 'exists' });
    return 'exists';
  }
  const origin = source.origin?.(d.digest);
  if (mountable(target, origin) && (await target.mount!(d, origin.repository, { signal: opts.signal }))) {
    progress?.({ type: 'blob', digest: d.digest, size: d.size, status: 'mounted' });
    return 'mounted';
  }
  checkAborted(opts.signal);
  progress?.({ type: 'blob', digest: d.digest, size: d.size, status: 'uploading', sent: 0 });
  const stream = await source.fetch(d, { signal: opts.signal });
  let res;
  try {
    res = await target.push(d, stream, {
      signal: opts.signal,
      onProgress: progress ? (sent) => progress({ type: 'blob', digest: d.digest, size: d.size, status: 'uploading', sent }) : undefined,
    });
  } catch (err) {
    // Bytes that do not match their digest: say which cache they came from.
    if (err instanceof BkError && err.code === 'DATA_LOSS' && origin && !err.message.startsWith(origin.location)) {
      err.message = `${origin.location}: blob ${d.digest}: ${err.message}`;
    }
    throw err;
  } finally {
    // A store may answer without reading (the blob appeared meanwhile); release the source either way.
    discard(stream);
  }
  progress?.({ type: 'blob', digest: d.digest, size: d.size, status: res.outcome });
  return res.outcome;
}

export async function pushCache(target: ContentStore, built: BuiltCache, source: BlobSource, opts: TransferOptions = {}): Promise<TransferStats> {
  const lease = await target.lease?.();
  try {
    return await pushLeased(target, built, source, opts, lease);
  } finally {
    await lease?.release();
  }
}

async function pushLeased(
  target: ContentStore,
  built: BuiltCache,
  source: BlobSource,
  opts: TransferOptions,
  lease?: { add(digest: string): Promise<void> },
): Promise<TransferStats> {
  const stats = emptyStats();
  await mapLimit(built.blobs, opts.concurrency ?? 4, async (d) => {
    checkAborted(opts.signal);
    // Claim before checking existence: a blob we skip must survive until tagged.
    await lease?.add(d.digest);
    count(stats, await transferBlob(target, source, d, opts), d.size);
  });
  await lease?.add(built.config.desc.digest);
  await lease?.add(built.manifest.desc.digest);
  checkAborted(opts.signal);
  const cfg = await target.push(built.config.desc, built.config.bytes, { signal: opts.signal });
  opts.onProgress?.({ type: 'config', digest: built.config.desc.digest, size: built.config.desc.size, status: cfg.outcome });
  checkAborted(opts.signal);
  const mf = await target.push(built.manifest.desc, built.manifest.bytes, { signal: opts.signal });
  opts.onProgress?.({ type: 'manifest', digest: built.manifest.desc.digest, size: built.manifest.desc.size, status: mf.outcome });
  if (opts.tag) {
    checkAborted(opts.signal);
    await opts.beforeTag?.(built.manifest.desc);
    await target.tag(built.manifest.desc, opts.tag, { signal: opts.signal });
    opts.onProgress?.({ type: 'tag', digest: built.manifest.desc.digest, tag: opts.tag });
  }
  return stats;
}
