// Blob uploads: POST (start, monolithic with ?digest=, or mount), PATCH
// (chunks), PUT (finish), GET (status), DELETE (cancel).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs
//
// Stateless: the Location handed out is /v2/<repo>/blobs/uploads/<sealed>,
// where <sealed> carries the upstream, the repository, the tenant and the
// upstream's own session (its URL and offset, or the embedded store's ingest
// file), authenticated and encrypted (seal.ts). Any daemon with the same
// secret continues it, and a client cannot point it anywhere else: a state
// sealed for another repository, tenant or upstream is an unknown upload.
// Every upload's digest is verified before the upstream commits it: a
// registry session carries the hash of what passed so far (upload-hash.ts),
// the embedded store hashes its ingest file as it publishes it.
import type { Readable } from 'node:stream';
import { BkError, isNotFound } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import type { Call, GatewayContext } from './context.js';
import { DistError } from './errors.js';
import { isRepoName } from './router.js';
import { RESUMABLE_ALGORITHMS } from './upload-hash.js';
import { UPLOAD_TTL_SECONDS, type UploadState } from './upstream/types.js';

interface SealedUpload {
  up: string;
  repo: string;
  ten: string | null;
  exp: number;
  st: UploadState;
}

function location(ctx: GatewayContext, call: Call, repo: string, st: UploadState): string {
  const sealed: SealedUpload = { up: ctx.cfg.upstream, repo, ten: call.tenant, exp: Math.floor(Date.now() / 1000) + UPLOAD_TTL_SECONDS, st };
  return `/v2/${repo}/blobs/uploads/${ctx.sealer.seal('upload', sealed)}`;
}

function opened(ctx: GatewayContext, call: Call, repo: string, id: string): UploadState {
  const s = ctx.sealer.open('upload', id) as SealedUpload | undefined;
  if (!s || s.up !== ctx.cfg.upstream || s.repo !== repo || s.ten !== call.tenant || !(s.exp > Date.now() / 1000) || !s.st || typeof s.st.off !== 'number') {
    throw new DistError('BLOB_UPLOAD_UNKNOWN', 'upload location not sealed by this gateway for this repository and caller');
  }
  return s.st;
}

function rangeHeader(off: number): string {
  // distribution answers "0-0" for an empty session; clients read it as nothing received.
  return `0-${Math.max(0, off - 1)}`;
}

function accepted(ctx: GatewayContext, call: Call, repo: string, st: UploadState): void {
  call.send(202, { location: location(ctx, call, repo, st), range: rangeHeader(st.off), 'docker-upload-uuid': 'sealed' });
}

function created(call: Call, repo: string, digest: string): void {
  call.send(201, { location: `/v2/${repo}/blobs/${digest}`, 'docker-content-digest': digest });
}

function digestParam(call: Call): string {
  const d = call.url.searchParams.get('digest');
  if (!d || !isDigest(d)) throw new DistError('DIGEST_INVALID', 'missing or malformed digest parameter');
  return d;
}

/** The algorithm a chunked upload's digest will use, when the client says so (upload-hash.ts). */
function algorithmParam(call: Call): string | undefined {
  const a = call.url.searchParams.get('digest-algorithm');
  if (a === null) return undefined;
  if (!RESUMABLE_ALGORITHMS.includes(a)) throw new DistError('DIGEST_INVALID', `digest-algorithm ${JSON.stringify(a)} is not one the gateway verifies`);
  return a;
}

/** The request body, streamed on as it is: counted from lengths and offsets once the upstream took it. */
function body(call: Call): Readable {
  return call.req;
}

export async function startUpload(ctx: GatewayContext, call: Call, repo: string): Promise<void> {
  const mount = call.url.searchParams.get('mount');
  const from = call.url.searchParams.get('from');
  if (mount !== null && isDigest(mount) && from !== null && from !== repo) {
    // Only from a repository the caller may pull: otherwise the upstream is not even asked, and
    // the answer (a new upload, 202) is the one an absent blob gets.
    if (isRepoName(from) && ctx.auth.may(call.identity, 'pull', from)) {
      // A `from` the upstream cannot hold (a name the embedded store refuses) is a blob it lacks too.
      const nowhere = (err: unknown) => isNotFound(err) || (err instanceof BkError && err.code === 'INVALID_ARGUMENT' && err.reason === 'name-invalid');
      if (await ctx.upstream.mount(repo, mount, from, call.signal).catch((err) => (nowhere(err) ? false : Promise.reject(err)))) {
        created(call, repo, mount);
        return;
      }
    }
  }
  // Monolithic upload in the POST itself: the digest is checked before any session opens.
  const digest = call.url.searchParams.has('digest') ? digestParam(call) : undefined;
  const st = await ctx.upstream.startUpload(repo, call.signal, algorithmParam(call));
  if (digest) {
    // This session's location is never handed out: if it does not end here, nobody can end it.
    await ctx.upstream.finishUpload(repo, st, digest, call.hasBody() ? body(call) : undefined, call.contentLength(), call.signal).catch(async (err: unknown) => {
      await ctx.upstream.cancelUpload(repo, st).catch(() => {});
      throw err;
    });
    call.bytesIn += call.contentLength() ?? 0;
    created(call, repo, digest);
    return;
  }
  call.discardBody();
  accepted(ctx, call, repo, st);
}

export async function uploadStatus(ctx: GatewayContext, call: Call, repo: string, id: string): Promise<void> {
  const now = await ctx.upstream.uploadStatus(repo, opened(ctx, call, repo, id), call.signal);
  call.send(204, { location: location(ctx, call, repo, now), range: rangeHeader(now.off), 'docker-upload-uuid': 'sealed' });
}

export async function patchUpload(ctx: GatewayContext, call: Call, repo: string, id: string): Promise<void> {
  const st = opened(ctx, call, repo, id);
  const length = call.contentLength();
  const cr = call.header('content-range');
  if (cr !== undefined) {
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(cr.trim());
    if (!m || Number(m[1]) !== st.off || Number(m[2]) < Number(m[1])) throw new DistError('RANGE_INVALID', `chunk does not start at ${st.off}`, { location: location(ctx, call, repo, st), range: rangeHeader(st.off) });
    if (length !== undefined && Number(m[2]) - Number(m[1]) + 1 !== length) throw new DistError('SIZE_INVALID', 'Content-Range and Content-Length disagree');
  }
  const next = await ctx.upstream.appendUpload(repo, st, body(call), length, call.signal);
  call.bytesIn += next.off - st.off;
  accepted(ctx, call, repo, next);
}

export async function putUpload(ctx: GatewayContext, call: Call, repo: string, id: string): Promise<void> {
  const st = opened(ctx, call, repo, id);
  const digest = digestParam(call);
  const has = call.hasBody();
  await ctx.upstream.finishUpload(repo, st, digest, has ? body(call) : undefined, has ? call.contentLength() : undefined, call.signal);
  if (has) call.bytesIn += call.contentLength() ?? 0;
  else call.discardBody();
  created(call, repo, digest);
}

export async function cancelUpload(ctx: GatewayContext, call: Call, repo: string, id: string): Promise<void> {
  const st = opened(ctx, call, repo, id);
  // https://github.com/opencontainers/distribution-spec/blob/main/spec.md#deleting-an-upload: 404 when there is no such upload.
  if (!(await ctx.upstream.cancelUpload(repo, st))) throw new DistError('BLOB_UPLOAD_UNKNOWN', 'the upload session is over');
  call.send(204, {});
}
