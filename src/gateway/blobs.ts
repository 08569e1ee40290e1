// Blobs: GET/HEAD (with Range), DELETE. A blob is served from repository R
// only if the upstream links it to R (distribution's per-repository links;
// the embedded store keeps one blob directory per repository), or, for a
// tenant-tier repository, if the global tier of the same cache holds it and
// the caller may pull there (GET only, see headBlob): what a manifest that
// fell back to the global tier names must be readable through the same repository.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs
import { pipeline } from 'node:stream/promises';
import type { Call, GatewayContext } from './context.js';
import { DistError } from './errors.js';
import { tierOf } from './tiers.js';

/** Repositories a blob of `repo` may be read from, in order. */
function readPlaces(ctx: GatewayContext, call: Call, repo: string): string[] {
  const t = tierOf(ctx.tiers, call.tenant, ctx.upstream, repo);
  return t?.global !== undefined && ctx.auth.may(call.identity, 'pull', t.global) ? [repo, t.global] : [repo];
}

// RFC 9110 §14.1.2: one range, "first-" or "first-last". Anything else is ignored (a 200 of everything).
const RANGE_RE = /^bytes=(\d{1,15})-(\d{0,15})$/;

/**
 * HEAD answers for the repository itself, never the global tier: pushers ask
 * HEAD to decide what to upload, and a blob the repository lacks must be sent.
 */
export async function headBlob(ctx: GatewayContext, call: Call, repo: string, digest: string): Promise<void> {
  const size = await ctx.upstream.blobSize(repo, digest, call.signal);
  if (size === undefined) throw new DistError('BLOB_UNKNOWN');
  call.send(200, { 'content-type': 'application/octet-stream', 'content-length': String(size), 'docker-content-digest': digest, 'accept-ranges': 'bytes' });
}

export async function getBlob(ctx: GatewayContext, call: Call, repo: string, digest: string): Promise<void> {
  const asked = call.header('range');
  const range = asked && RANGE_RE.test(asked.trim()) && (() => {
    const m = RANGE_RE.exec(asked.trim())!;
    return !m[2] || Number(m[2]) >= Number(m[1]);
  })() ? asked.trim() : undefined;
  for (const place of readPlaces(ctx, call, repo)) {
    const r = await ctx.upstream.getBlob(place, digest, range, call.signal);
    if (r === undefined) continue;
    if (r === 'range-invalid') throw new DistError('RANGE_INVALID', 'range outside the blob', { 'content-range': 'bytes */*' });
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(r.length),
      'docker-content-digest': digest,
      'accept-ranges': 'bytes',
    };
    if (r.status === 206 && r.contentRange) headers['content-range'] = r.contentRange;
    call.status = r.status;
    call.res.writeHead(r.status, { 'docker-distribution-api-version': 'registry/2.0', ...headers });
    // Streamed: at most a few chunks of the blob are in memory at once, and no
    // per-chunk work of ours in between (counting is from the length once sent).
    await pipeline(r.body, call.res);
    call.bytesOut += r.length;
    return;
  }
  throw new DistError('BLOB_UNKNOWN');
}

export async function deleteBlob(ctx: GatewayContext, call: Call, repo: string, digest: string): Promise<void> {
  if (!(await ctx.upstream.deleteBlob(repo, digest, call.signal))) throw new DistError('BLOB_UNKNOWN');
  call.send(202, {});
}
