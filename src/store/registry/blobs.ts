// Blob checks, uploads and deletes against the distribution API (reads: blob-fetch.ts).
// Push (monolithic, chunked, mount): https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs
import { BkError, dataLoss } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { algorithmOf, isDigest, newHasher } from '../../oci/digest.js';
import { discard } from '../content.js';
import type { PushResult } from '../types.js';
import { repositoryScope } from './auth/challenge.js';
import { header } from './client.js';
import { RegistryError } from './errcode/index.js';
import { safeUrl } from './hosts.js';
import { isLoopbackHost } from './plain-http.js';
import { apiUrl, deleteScope, pullScope, pushScope, uploadsUrl, type RepoContext } from './repo.js';
import { backoffDelay, isRetryable, overBudget, sleep, withRetry } from './retry/policy.js';
import { ExactReader, holdbackVerified, Source, type BlobSource } from './source.js';

/** The smallest PATCH we send but for the last: S3-backed registries reject smaller parts. */
export const MIN_CHUNK = 5 << 20;

/**
 * The largest chunk a registry's OCI-Chunk-Min-Length can make us hold in
 * memory. A chunk is buffered (to resend it after a failure), so a registry
 * asking for more (a lie, or a limit no real registry has) gets one streamed
 * PUT instead: a layer is never buffered.
 */
export const MAX_REGISTRY_CHUNK = 64 << 20;

export interface BlobPushOptions {
  signal?: AbortSignal;
  onProgress?: (sent: number) => void;
  /** Try a cross-repository mount from this repository first. */
  mountFrom?: string;
}

const what = (ctx: RepoContext, verb: string, d: string) => `${verb} ${ctx.location}@${d}`;

export async function blobExists(ctx: RepoContext, desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const res = await ctx.client.send({
    method: 'HEAD',
    url: apiUrl(ctx, 'blobs', desc.digest),
    registry: ctx.endpoint.registry,
    scopes: pullScope(ctx),
    expect: [200, 404],
    what: what(ctx, 'HEAD blob', desc.digest),
    signal,
  });
  await ctx.client.finish(res);
  if (res.status !== 200) return false;
  // A blob of another size is not the one the descriptor names (or the
  // registry lies): not present, so a push uploads it (and the upload's own
  // checks decide) instead of a manifest naming it going out on a claim.
  const length = header(res, 'content-length');
  if (length !== undefined && Number(length) !== desc.size) return false;
  // Likewise a Docker-Content-Digest naming another blob (of the same algorithm:
  // a registry may name content by another one) is the registry describing something else.
  const claimed = header(res, 'docker-content-digest');
  // The digest asked for first: it is the answer to nearly every HEAD, and then nothing is parsed.
  return !(claimed && claimed !== desc.digest && isDigest(claimed) && algorithmOf(claimed) === algorithmOf(desc.digest));
}

/** Registry-initiated upload session location, relative locations resolved. */
function locationOf(res: { headers: Record<string, string | string[] | undefined>; url: URL }, wh: string): URL {
  const loc = header(res, 'location');
  if (!loc) throw new BkError('UNAVAILABLE', `${wh}: registry sent no upload location`, { reason: 'bad-response' });
  let url: URL;
  try {
    url = new URL(loc, res.url);
  } catch {
    throw new BkError('UNAVAILABLE', `${wh}: registry sent an invalid upload location`, { reason: 'bad-response' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BkError('UNAVAILABLE', `${wh}: registry sent a ${url.protocol} upload location`, { reason: 'bad-response' });
  }
  // An https registry (or a man in the middle) moving the upload to plain
  // HTTP would put the blob and the session state in clear; a loopback host
  // is the one place the client itself falls back to HTTP (plain-http.ts).
  if (res.url.protocol === 'https:' && url.protocol === 'http:' && !isLoopbackHost(url.host)) {
    throw new BkError('UNAVAILABLE', `${wh}: registry moved the upload from https to plain HTTP (${safeUrl(url)})`, { reason: 'bad-response' });
  }
  return url;
}

/** The smallest chunk the registry takes, from a new upload session's answer (0: no minimum). */
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-a-blob-in-chunks
function minChunkOf(res: { headers: Record<string, string | string[] | undefined> }): number {
  const min = Number(header(res, 'oci-chunk-min-length') ?? 0);
  return Number.isFinite(min) ? min : 0;
}

/** Adds ?digest= without re-encoding the registry's own state parameters. */
function withDigest(loc: URL, digest: string): URL {
  const s = loc.toString();
  return new URL(`${s}${s.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`);
}

async function startUpload(ctx: RepoContext, desc: Descriptor, signal?: AbortSignal): Promise<{ location: URL; minChunk: number }> {
  const wh = what(ctx, 'start upload of blob', desc.digest);
  const res = await ctx.client.send({
    method: 'POST',
    url: uploadsUrl(ctx),
    registry: ctx.endpoint.registry,
    scopes: pushScope(ctx),
    headers: { 'content-length': '0' },
    expect: [202],
    what: wh,
    signal,
  });
  await ctx.client.finish(res);
  return { location: locationOf(res, wh), minChunk: minChunkOf(res) };
}

/**
 * Asks for a cross-repository mount. 201: the registry linked the blob.
 * 202: it could not (or does not mount) and opened an upload instead,
 * whose location is returned for the caller to use.
 */
export async function mountBlob(
  ctx: RepoContext,
  desc: Descriptor,
  from: string,
  signal?: AbortSignal,
): Promise<{ mounted: true } | { mounted: false; location: URL; minChunk: number }> {
  const wh = what(ctx, `mount from ${from} of blob`, desc.digest);
  const q = `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`;
  const res = await ctx.client.send({
    method: 'POST',
    url: uploadsUrl(ctx, q),
    registry: ctx.endpoint.registry,
    scopes: [...pushScope(ctx), repositoryScope(from, 'pull')],
    headers: { 'content-length': '0' },
    expect: [201, 202],
    what: wh,
    signal,
  });
  await ctx.client.finish(res);
  if (res.status === 201) return { mounted: true };
  return { mounted: false, location: locationOf(res, wh), minChunk: minChunkOf(res) };
}

/** Best-effort cancel of an upload session we are abandoning. */
export async function cancelUpload(ctx: RepoContext, location: URL): Promise<void> {
  try {
    const res = await ctx.client.send({
      method: 'DELETE',
      url: location,
      registry: ctx.endpoint.registry,
      scopes: pushScope(ctx),
      expect: [204, 202, 200, 404],
      what: `cancel upload to ${ctx.location}`,
      retry: false,
    });
    await ctx.client.finish(res);
  } catch {
    // The registry purges stale uploads on its own.
  }
}

/** Checks the registry's idea of what it stored, when it says. */
function checkCommitted(res: { headers: Record<string, string | string[] | undefined> }, desc: Descriptor, wh: string): void {
  const got = header(res, 'docker-content-digest');
  if (got && got !== desc.digest) throw dataLoss(`${wh}: registry stored ${got}`, { reason: 'digest-mismatch' });
}

/** One POST-then-PUT upload: the body streams through holdbackVerified(). */
async function uploadMonolithic(ctx: RepoContext, desc: Descriptor, src: Source, location: URL, opts: BlobPushOptions): Promise<void> {
  const wh = what(ctx, 'PUT blob', desc.digest);
  const input = await src.open();
  // Progress is counted inside the verifier: a 'data' listener here would
  // switch the stream to flowing mode before undici starts reading it.
  const body = holdbackVerified(input, desc, { onBytes: opts.onProgress });
  let checkError: unknown;
  body.once('error', (e) => (checkError = e));
  try {
    const res = await ctx.client.send({
      method: 'PUT',
      url: withDigest(location, desc.digest),
      registry: ctx.endpoint.registry,
      scopes: pushScope(ctx),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: () => body,
      replayable: false,
      commit: true,
      expect: [201],
      what: wh,
      signal: opts.signal,
    });
    await ctx.client.finish(res);
    checkCommitted(res, desc, wh);
  } catch (err) {
    // Our own verification failure is the real story, whatever the socket said.
    if (checkError) throw checkError;
    throw err;
  } finally {
    if (!input.destroyed) discard(input);
  }
}

/** Raised inside an upload when the session is lost and must start over. */
class RestartUpload extends BkError {
  constructor(msg: string, cause?: unknown) {
    super('UNAVAILABLE', msg, { cause, reason: 'upload-restart' });
  }
}

/**
 * Where an upload stands: GET on its location answers 204 with
 * `Range: 0-<last byte>`. Returns the bytes received and the (possibly new) location.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#resuming-an-upload (docker: "Upload Progress")
 */
async function uploadStatus(ctx: RepoContext, location: URL, wh: string, signal?: AbortSignal): Promise<{ received: number; location: URL }> {
  let res;
  try {
    res = await ctx.client.send({
      method: 'GET',
      url: location,
      registry: ctx.endpoint.registry,
      scopes: pushScope(ctx),
      expect: [204],
      what: `${wh} (status)`,
      signal,
    });
  } catch (err) {
    // The session is gone or invalid (distribution 2.x invalidates sessions
    // whose stored size no longer matches their state token).
    if (err instanceof RegistryError && err.status >= 400 && err.status < 500) throw new RestartUpload(`${wh}: upload session lost`, err);
    throw err;
  }
  await ctx.client.finish(res);
  const end = uploadRangeEnd(res);
  // "0-0" is what distribution reports for an empty session.
  const received = end ? end + 1 : 0;
  return { received, location: header(res, 'location') ? locationOf(res, wh) : location };
}

/** The last byte an upload answer's `Range: 0-N` names; undefined without one. */
export function uploadRangeEnd(res: { headers: Record<string, string | string[] | undefined> }): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range')?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Chunked upload: PATCH pieces with Content-Range, then PUT ?digest=.
 * One chunk is buffered at a time, so a chunk that fails can be resent from
 * wherever the registry says it stopped, even from a one-shot stream. The
 * digest is checked before the last chunk leaves, so a mismatch never
 * completes the upload.
 */
async function uploadChunked(
  ctx: RepoContext,
  desc: Descriptor,
  src: Source,
  start: { location: URL; minChunk: number },
  opts: BlobPushOptions,
): Promise<void> {
  const wh = what(ctx, 'PATCH blob', desc.digest);
  const chunkSize = Math.max(ctx.endpoint.settings.chunkSize ?? MIN_CHUNK, MIN_CHUNK, start.minChunk);
  const reader = new ExactReader(await src.open());
  const hasher = newHasher(algorithmOf(desc.digest));
  let location = start.location;
  let sent = 0;
  try {
    while (sent < desc.size || sent === 0) {
      const want = Math.min(chunkSize, desc.size - sent);
      const buf = await reader.read(want);
      if (buf.length < want) throw dataLoss(`content of ${desc.digest} has ${sent + buf.length} bytes, descriptor says ${desc.size}`, { reason: 'size-mismatch' });
      hasher.update(buf);
      if (sent + want === desc.size) {
        if ((await reader.read(1)).length > 0) throw dataLoss(`content of ${desc.digest} is larger than its descriptor's size ${desc.size}`, { reason: 'size-mismatch' });
        const got = hasher.digest();
        if (got !== desc.digest) throw dataLoss(`digest mismatch: expected ${desc.digest}, got ${got}`, { reason: 'digest-mismatch' });
      }
      if (want > 0) location = await patchChunk(ctx, location, buf, sent, wh, opts.signal);
      sent += want;
      opts.onProgress?.(sent);
      if (desc.size === 0) break;
    }
  } catch (err) {
    if (err instanceof BkError && err.code === 'DATA_LOSS') await cancelUpload(ctx, location);
    throw err;
  } finally {
    reader.close();
  }
  const res = await ctx.client.send({
    method: 'PUT',
    url: withDigest(location, desc.digest),
    registry: ctx.endpoint.registry,
    scopes: pushScope(ctx),
    headers: { 'content-length': '0' },
    commit: true,
    expect: [201],
    what: what(ctx, 'commit blob', desc.digest),
    signal: opts.signal,
  });
  await ctx.client.finish(res);
  checkCommitted(res, desc, wh);
}

/** Sends one chunk, resuming inside it after failures; returns the next location. */
async function patchChunk(ctx: RepoContext, location: URL, buf: Buffer, chunkStart: number, wh: string, signal?: AbortSignal): Promise<URL> {
  const retry = ctx.client.retry;
  const end = chunkStart + buf.length; // exclusive
  let offset = chunkStart;
  const started = Date.now();
  for (let failures = 0; ; ) {
    try {
      const res = await ctx.client.send({
        method: 'PATCH',
        url: location,
        registry: ctx.endpoint.registry,
        scopes: pushScope(ctx),
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${end - 1}`,
          'content-length': String(end - offset),
        },
        body: () => buf.subarray(offset - chunkStart),
        expect: [202],
        what: wh,
        signal,
        retry: false,
      });
      await ctx.client.finish(res);
      return locationOf(res, wh);
    } catch (err) {
      const outOfRange = err instanceof RegistryError && err.status === 416;
      if (!outOfRange && !isRetryable(err)) throw err;
      if (++failures >= retry.maxAttempts) throw new RestartUpload(`${wh}: chunk at ${chunkStart} failed ${failures} times`, err);
      // The time budget holds here too: a Retry-After of hours (each capped
      // at the whole budget) must not make every failure a budget-long wait.
      const delay = backoffDelay(failures, retry, (err as RegistryError).retryAfterMs);
      if (overBudget(Date.now() - started, delay, retry)) throw new RestartUpload(`${wh}: chunk at ${chunkStart} would wait past the retry budget`, err);
      await sleep(delay, signal);
      const st = await uploadStatus(ctx, location, wh, signal);
      location = st.location;
      if (st.received < chunkStart || st.received > end) throw new RestartUpload(`${wh}: registry holds ${st.received} bytes, chunk starts at ${chunkStart}`, err);
      offset = st.received;
      if (offset === end) return location;
    }
  }
}

/**
 * Pushes a blob: HEAD and skip when present, else mount (when asked) or
 * upload. A failed upload that cannot be resumed starts over from scratch
 * within the retry budget, which needs content that can be reopened.
 */
export async function pushBlob(ctx: RepoContext, desc: Descriptor, content: BlobSource, opts: BlobPushOptions = {}): Promise<PushResult> {
  if (await blobExists(ctx, desc, opts.signal)) return { outcome: 'exists', bytes: 0 };
  const src = new Source(content);
  const release = await ctx.limiter.acquire(opts.signal);
  try {
    let first: { location: URL; minChunk: number } | undefined;
    if (opts.mountFrom && opts.mountFrom !== ctx.repository) {
      const m = await mountBlob(ctx, desc, opts.mountFrom, opts.signal);
      if (m.mounted) return { outcome: 'mounted', bytes: 0 };
      first = m;
    }
    const chunkSize = ctx.endpoint.settings.chunkSize;
    await withRetry(
      async () => {
        const start = first ?? (await startUpload(ctx, desc, opts.signal));
        first = undefined;
        const chunked = chunkSize !== undefined && start.minChunk <= Math.max(chunkSize, MAX_REGISTRY_CHUNK);
        try {
          if (chunked) await uploadChunked(ctx, desc, src, start, opts);
          else await uploadMonolithic(ctx, desc, src, start.location, opts);
        } catch (err) {
          if ((isRetryable(err) || err instanceof RestartUpload) && !src.canReopen()) {
            throw new BkError('UNAVAILABLE', `upload of ${desc.digest} to ${ctx.location} failed and cannot be restarted: the content was a one-shot stream (${(err as Error).message})`, {
              cause: err,
              reason: 'not-restartable',
            });
          }
          throw err;
        }
      },
      ctx.client.retry,
      { signal: opts.signal, retryable: (err) => err instanceof RestartUpload || isRetryable(err) },
    );
    return { outcome: 'uploaded', bytes: desc.size };
  } finally {
    release();
  }
}

export async function deleteBlob(ctx: RepoContext, desc: Descriptor, signal?: AbortSignal): Promise<void> {
  const res = await ctx.client.send({
    method: 'DELETE',
    url: apiUrl(ctx, 'blobs', desc.digest),
    registry: ctx.endpoint.registry,
    scopes: deleteScope(ctx),
    expect: [202, 200, 204],
    what: what(ctx, 'DELETE blob', desc.digest),
    signal,
  });
  await ctx.client.finish(res);
}
