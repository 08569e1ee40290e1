// Manifest reads, writes and tag resolution.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-manifests
import { BkError, dataLoss, resourceExhausted } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { algorithmOf, digestBytes, isDigest } from '../../oci/digest.js';
import { isManifestMediaType, MANIFEST_MEDIA_TYPES } from '../../oci/media-types.js';
import { discard, readAll } from '../content.js';
import { blobExists } from './blobs.js';
import { header, type RegistryResponse } from './client.js';
import { RegistryError } from './errcode/index.js';
import { apiUrl, deleteScope, pullScope, pushScope, type RepoContext } from './repo.js';
import { backoffDelay, sleep } from './retry/policy.js';

/** Default cap on manifest size: what distribution itself accepts (4 MiB). */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 << 20;

// Every type we can use, so registries never down-convert to schema 1.
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export interface ManifestBytes {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

const what = (ctx: RepoContext, verb: string, ref: string) => `${verb} ${ctx.location}${isDigest(ref) ? '@' : ':'}${ref}`;

function mediaTypeOf(res: RegistryResponse, fallback: string): string {
  // Content-Type may carry parameters ("; charset=utf-8").
  const ct = header(res, 'content-type')?.split(';')[0]?.trim();
  return ct || fallback;
}

/**
 * GETs a manifest by tag or digest, bounded, and checks it three ways: the
 * bytes against the digest asked for, against Docker-Content-Digest, and
 * against `expected` (descriptor digest and size) when given.
 */
export async function getManifest(ctx: RepoContext, ref: string, expected?: Descriptor, signal?: AbortSignal): Promise<ManifestBytes> {
  const wh = what(ctx, 'GET manifest', ref);
  const limit = ctx.maxManifestBytes;
  if (expected && expected.size > limit) {
    throw resourceExhausted(`${wh}: ${expected.size} bytes is over the ${limit}-byte manifest limit`, { reason: 'too-large' });
  }
  return withinDeadline(ctx, wh, signal, (sig) => getManifestOnce(ctx, ref, wh, limit, expected, sig));
}

/**
 * Runs a manifest read under the overall deadline (timeouts.manifestMs):
 * a manifest is small, so a registry that trickles it, or answers
 * every retry slowly, is not worth waiting for. DEADLINE_EXCEEDED.
 */
async function withinDeadline<T>(ctx: RepoContext, wh: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ms = ctx.client.timeouts.manifestMs;
  const deadline = AbortSignal.timeout(ms);
  try {
    return await fn(signal ? AbortSignal.any([signal, deadline]) : deadline);
  } catch (err) {
    if (deadline.aborted && !signal?.aborted) throw new BkError('DEADLINE_EXCEEDED', `${wh}: no complete answer within ${ms} ms`, { cause: err, reason: 'too-slow' });
    throw err;
  }
}

async function getManifestOnce(ctx: RepoContext, ref: string, wh: string, limit: number, expected: Descriptor | undefined, signal: AbortSignal): Promise<ManifestBytes> {
  const res = await ctx.client.send({
    method: 'GET',
    url: apiUrl(ctx, 'manifests', ref),
    registry: ctx.endpoint.registry,
    scopes: pullScope(ctx),
    headers: { accept: expected?.mediaType ? `${expected.mediaType}, ${ACCEPT}` : ACCEPT },
    expect: [200],
    what: wh,
    signal,
  });
  const declared = Number(header(res, 'content-length') ?? -1);
  if (declared > limit) {
    discard(res.body);
    throw resourceExhausted(`${wh}: ${declared} bytes is over the ${limit}-byte manifest limit`, { reason: 'too-large' });
  }
  // A length that disagrees with the descriptor is a lie now, not after a wait for bytes that never come.
  if (expected && declared >= 0 && declared !== expected.size) {
    discard(res.body);
    throw dataLoss(`${wh}: Content-Length ${declared}, descriptor says ${expected.size}`, { reason: 'size-mismatch' });
  }
  const bytes = await readAll(res.body, limit, wh);
  const want = expected?.digest ?? (isDigest(ref) ? ref : header(res, 'docker-content-digest'));
  const algorithm = want && isDigest(want) ? algorithmOf(want) : 'sha256';
  const digest = digestBytes(bytes, algorithm);
  if (isDigest(ref) && digest !== ref) throw dataLoss(`${wh}: content hashes to ${digest}`, { reason: 'digest-mismatch' });
  const claimed = header(res, 'docker-content-digest');
  if (claimed && isDigest(claimed) && algorithmOf(claimed) === algorithm && claimed !== digest) {
    throw dataLoss(`${wh}: Docker-Content-Digest says ${claimed}, content hashes to ${digest}`, { reason: 'digest-mismatch' });
  }
  if (expected) {
    if (digest !== expected.digest) throw dataLoss(`${wh}: content hashes to ${digest}`, { reason: 'digest-mismatch' });
    if (bytes.length !== expected.size) throw dataLoss(`${wh}: ${bytes.length} bytes, descriptor says ${expected.size}`, { reason: 'size-mismatch' });
  }
  return { mediaType: mediaTypeOf(res, expected?.mediaType ?? ''), digest, bytes };
}

/** HEAD a manifest; undefined on 404. Falls back to GET when the registry omits the digest. */
export async function headManifest(ctx: RepoContext, ref: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
  const wh = what(ctx, 'HEAD manifest', ref);
  const res = await withinDeadline(ctx, wh, signal, (sig) =>
    ctx.client.send({
      method: 'HEAD',
      url: apiUrl(ctx, 'manifests', ref),
      registry: ctx.endpoint.registry,
      scopes: pullScope(ctx),
      headers: { accept: ACCEPT },
      expect: [200, 404],
      what: wh,
      signal: sig,
    }),
  );
  await ctx.client.finish(res);
  if (res.status === 404) return undefined;
  const digest = header(res, 'docker-content-digest');
  const size = Number(header(res, 'content-length') ?? NaN);
  const mediaType = mediaTypeOf(res, '');
  // The spec only says SHOULD for Docker-Content-Digest on HEAD; without it
  // (or without a usable type or size) only the bytes can tell. A size past
  // the manifest limit is not passed on as a descriptor: the GET judges it.
  if (!digest || !isDigest(digest) || !Number.isInteger(size) || size < 0 || size > ctx.maxManifestBytes || !mediaType) {
    const m = await getManifest(ctx, ref, undefined, signal);
    return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  }
  if (isDigest(ref) && digest !== ref) throw dataLoss(`${wh}: registry answered with ${digest}`, { reason: 'digest-mismatch' });
  return { mediaType, digest, size };
}

/** PUTs manifest bytes under a digest or a tag, with their own media type as Content-Type. */
export async function putManifest(ctx: RepoContext, ref: string, m: ManifestBytes, signal?: AbortSignal): Promise<void> {
  const wh = what(ctx, 'PUT manifest', ref);
  if (m.bytes.length > ctx.maxManifestBytes) {
    throw resourceExhausted(`${wh}: ${m.bytes.length} bytes is over the ${ctx.maxManifestBytes}-byte manifest limit`, { reason: 'too-large' });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await putOnce(ctx, ref, m, wh, signal);
    } catch (err) {
      if (!(err instanceof RegistryError) || err.status !== 400 || !err.codes.some((c) => REFERENCE_CODES.has(c))) throw err;
      // distribution 2.x writes repository link files non-atomically
      // (truncate, then write), so a PUT racing another client's push of the
      // same blob can be told a blob is unknown or has an invalid digest.
      // Check the claim; retry only when everything referenced is there.
      const missing = await missingReferences(ctx, m.bytes, signal);
      if (missing.length > 0) {
        throw new RegistryError('FAILED_PRECONDITION', `${wh}: references content the repository lacks: ${missing.slice(0, 3).join(', ')}`, 400, [...err.codes], {
          cause: err,
          reason: 'manifest-blob-unknown',
        });
      }
      if (attempt >= ctx.client.retry.maxAttempts) throw err;
      await sleep(backoffDelay(attempt, ctx.client.retry), signal);
    }
  }
}

const REFERENCE_CODES = new Set(['MANIFEST_BLOB_UNKNOWN', 'BLOB_UNKNOWN', 'DIGEST_INVALID']);

async function putOnce(ctx: RepoContext, ref: string, m: ManifestBytes, wh: string, signal?: AbortSignal): Promise<void> {
  const res = await ctx.client.send({
    method: 'PUT',
    url: apiUrl(ctx, 'manifests', ref),
    registry: ctx.endpoint.registry,
    scopes: pushScope(ctx),
    headers: { 'content-type': m.mediaType, 'content-length': String(m.bytes.length) },
    body: () => m.bytes,
    expect: [201, 200],
    what: wh,
    signal,
  });
  await ctx.client.finish(res);
  const stored = header(res, 'docker-content-digest');
  if (stored && isDigest(stored) && algorithmOf(stored) === algorithmOf(m.digest) && stored !== m.digest) {
    throw dataLoss(`${wh}: registry stored ${stored}, expected ${m.digest}`, { reason: 'digest-mismatch' });
  }
}

/** Digests a manifest or index references that the repository does not hold. */
async function missingReferences(ctx: RepoContext, bytes: Buffer, signal?: AbortSignal): Promise<string[]> {
  let doc: { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch {
    return [];
  }
  const refs = [...(doc.config ? [doc.config] : []), ...(Array.isArray(doc.layers) ? doc.layers : []), ...(Array.isArray(doc.manifests) ? doc.manifests : [])]
    .filter((d): d is Descriptor => !!d && isDigest(d.digest) && !(Array.isArray(d.urls) && d.urls.length > 0));
  const missing: string[] = [];
  for (const d of refs) {
    const present = isManifestMediaType(d.mediaType) ? (await headManifest(ctx, d.digest, signal)) !== undefined : await blobExists(ctx, d, signal);
    if (!present) missing.push(d.digest);
  }
  return missing;
}

export async function deleteManifest(ctx: RepoContext, digest: string, signal?: AbortSignal): Promise<void> {
  const res = await ctx.client.send({
    method: 'DELETE',
    url: apiUrl(ctx, 'manifests', digest),
    registry: ctx.endpoint.registry,
    scopes: deleteScope(ctx),
    expect: [202, 200, 204],
    what: what(ctx, 'DELETE manifest', digest),
    signal,
  });
  await ctx.client.finish(res);
}

/**
 * Recently pushed manifests by digest, so tag() can PUT the same bytes
 * without downloading them again. Bounded by count and bytes; oldest out first.
 */
export class ManifestCache {
  private readonly entries = new Map<string, ManifestBytes>();
  private bytes = 0;

  constructor(
    private readonly maxEntries = 256,
    private readonly maxBytes = 32 << 20,
  ) {}

  get(digest: string): ManifestBytes | undefined {
    const m = this.entries.get(digest);
    if (m) {
      // Refresh recency.
      this.entries.delete(digest);
      this.entries.set(digest, m);
    }
    return m;
  }

  put(m: ManifestBytes): void {
    if (m.bytes.length > this.maxBytes) return;
    const old = this.entries.get(m.digest);
    if (old) {
      this.bytes -= old.bytes.length;
      this.entries.delete(m.digest);
    }
    this.entries.set(m.digest, m);
    this.bytes += m.bytes.length;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [k, v] = this.entries.entries().next().value as [string, ManifestBytes];
      this.entries.delete(k);
      this.bytes -= v.bytes.length;
    }
  }

  delete(digest: string): void {
    const m = this.entries.get(digest);
    if (m) {
      this.bytes -= m.bytes.length;
      this.entries.delete(digest);
    }
  }
}

export function manifestTooLarge(ctx: RepoContext, desc: Descriptor): BkError | undefined {
  if (desc.size > ctx.maxManifestBytes) {
    return resourceExhausted(`manifest ${desc.digest} is ${desc.size} bytes, over the ${ctx.maxManifestBytes}-byte limit`, { reason: 'too-large' });
  }
  return undefined;
}
