// Blob downloads: one GET, checked before its first byte (framing), resumed
// when it breaks off (resume.ts), verified as one stream (content.ts).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs
import { Readable } from 'node:stream';
import { BkError, dataLoss, invalidArgument } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { discard, verified } from '../content.js';
import { blobExists } from './blobs.js';
import { header } from './client.js';
import { apiUrl, pullScope, type RepoContext } from './repo.js';
import { resumingBody } from './resume.js';
import { skipBytes } from './source.js';

const what = (ctx: RepoContext, verb: string, d: string) => `${verb} ${ctx.location}@${d}`;

/**
 * Streams a blob, verified against the descriptor (size always, digest too
 * when reading from byte 0); a body that breaks off is resumed from where it
 * stopped (resume.ts). The transfer slot is held only until the
 * response headers arrive: holding it for the body would deadlock callers
 * that open several streams before reading them.
 */
export async function fetchBlob(ctx: RepoContext, desc: Descriptor, offset = 0, signal?: AbortSignal): Promise<Readable> {
  if (!Number.isInteger(offset) || offset < 0 || offset > desc.size) {
    throw invalidArgument(`offset ${offset} is outside ${desc.digest} (${desc.size} bytes)`, { reason: 'bad-offset' });
  }
  if (offset === desc.size && offset > 0) {
    // "bytes=size-" is unsatisfiable (416); an empty read only needs the blob to exist.
    if (!(await blobExists(ctx, desc, signal))) throw new BkError('NOT_FOUND', `${what(ctx, 'GET blob', desc.digest)}: not found`);
    return Readable.from([], { objectMode: false });
  }
  const wh = what(ctx, 'GET blob', desc.digest);
  // Opens the blob at `position`; used again to resume a body that broke off (resume.ts).
  const open = async (position: number): Promise<Readable> => {
    const release = await ctx.limiter.acquire(signal);
    try {
      const res = await ctx.client.send({
        method: 'GET',
        url: apiUrl(ctx, 'blobs', desc.digest),
        registry: ctx.endpoint.registry,
        scopes: pullScope(ctx),
        headers: position > 0 ? { range: `bytes=${position}-` } : {},
        expect: [200, 206],
        what: wh,
        signal,
      });
      const lie = framingLie(res, desc, position);
      if (lie) {
        discard(res.body);
        throw dataLoss(`${wh}: ${lie.message}`, { reason: lie.reason });
      }
      return position > 0 && res.status === 200 ? skipBytes(res.body, position) : res.body;
    } finally {
      release();
    }
  };
  const t = ctx.client.timeouts;
  const body = resumingBody(await open(offset), offset, desc.size, open, {
    retry: ctx.client.retry,
    maxResumes: t.maxResumes,
    minBytesPerSecond: t.minBytesPerSecond,
    windowMs: t.idleMs,
    // The throughput floor over the whole download, after the grace a manifest gets.
    budgetMs: t.manifestMs + (t.minBytesPerSecond > 0 ? ((desc.size - offset) * 1000) / t.minBytesPerSecond : Infinity),
    what: wh,
    signal,
  });
  return verified(body, desc, offset, ctx.location);
}

/**
 * What is wrong with a blob response's framing, judged before any byte is
 * read: a Content-Length or Content-Range that disagrees with the
 * descriptor (a 5 GB claim for a 1 KB blob, a range that starts elsewhere)
 * is a lie worth DATA_LOSS now, not a wait for bytes that never come.
 * https://www.rfc-editor.org/rfc/rfc9110#name-content-range
 */
function framingLie(
  res: { status: number; headers: Record<string, string | string[] | undefined> },
  desc: Descriptor,
  position: number,
): { message: string; reason: string } | undefined {
  const from = res.status === 206 ? position : 0;
  const cl = header(res, 'content-length');
  if (cl !== undefined && Number(cl) !== desc.size - from) {
    return { message: `Content-Length ${cl}, but the descriptor leaves ${desc.size - from} bytes from byte ${from}`, reason: 'size-mismatch' };
  }
  if (res.status !== 206) return undefined;
  const cr = header(res, 'content-range')?.trim() ?? '';
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr);
  const whole = m && Number(m[2]) === desc.size - 1 && (m[3] === '*' || Number(m[3]) === desc.size);
  if (!m || Number(m[1]) !== position || !whole) {
    return { message: `asked for bytes ${position}-${desc.size - 1}/${desc.size}, got Content-Range "${cr.slice(0, 100)}"`, reason: 'bad-range' };
  }
  return undefined;
}
