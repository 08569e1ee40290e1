// An upstream registry, `HOST[:PORT][/PREFIX]`: gateway repository R is
// upstream repository PREFIX/R. Requests go through the project's registry
// client (src/store/registry/client.ts: the daemon's credentials, per-host
// settings, retries, token auth). The upload session lives in the upstream;
// the gateway only carries its URL, offset and the hash of the bytes sent so
// far (upload-hash.ts) in the sealed state, so any daemon can continue it and
// verify its digest before the upstream commits. The state is trusted only
// while the upstream holds exactly its offset: a session that moved past what
// the gateway hashed is cancelled, never committed unverified.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
import type { Readable } from 'node:stream';
import { BkError, dataLoss } from '../../errors.js';
import { algorithmOf, digestBytes, isDigest, type Hasher } from '../../oci/digest.js';
import { MANIFEST_MEDIA_TYPES } from '../../oci/media-types.js';
import { readAll } from '../../store/content.js';
import { repositoryScope } from '../../store/registry/auth/challenge.js';
import { dockerConfigCredentials } from '../../store/registry/auth/docker-config.js';
import { header, RegistryClient, type RegistryRequest, type RegistryResponse } from '../../store/registry/client.js';
import { resolveEndpoint, type Endpoint, type HostSettings } from '../../store/registry/hosts.js';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../../store/registry/manifests.js';
import { uploadRangeEnd } from '../../store/registry/blobs.js';
import { holdbackVerified } from '../../store/registry/source.js';
import { HashingPass, resumeHash, unverifiable, type HashState } from '../upload-hash.js';
import { refuseStillNamed } from './named.js';
import type { BlobRead, ManifestRead, Upstream, UploadState } from './types.js';

type RegistryState = Extract<UploadState, { kind: 'registry' }>;

/** Whether a reported range end stands for `off` bytes: distribution says "0-0" both for nothing and for one byte. */
function holds(end: number | undefined, off: number): boolean {
  return end === undefined ? off === 0 : off === end + 1 || (end === 0 && off === 0);
}

export interface RegistryUpstreamOptions {
  hosts?: Record<string, HostSettings>;
  dockerConfig?: string;
}

/** Tags and catalog entries read from upstream at most: bounded memory for hostile upstreams. */
const MAX_LIST = 100_000;
const LIST_PAGE = 1000;
const ACCEPT_ALL = [...MANIFEST_MEDIA_TYPES, '*/*'].join(', ');

export class RegistryUpstream implements Upstream {
  private readonly client: RegistryClient;
  private readonly endpoint: Endpoint;

  constructor(
    readonly registry: string,
    readonly prefix: string,
    opts: RegistryUpstreamOptions = {},
  ) {
    this.endpoint = resolveEndpoint(registry, { hosts: opts.hosts });
    // Many gateway clients share one upstream: a wider pool than a single store's.
    this.client = new RegistryClient({ credentials: dockerConfigCredentials(opts.dockerConfig), connectionsPerHost: 64 });
  }

  private up(repo: string): string {
    return this.prefix ? `${this.prefix}/${repo}` : repo;
  }

  nameOf(repo: string): string {
    return `${this.registry}/${this.up(repo)}`;
  }

  repoOf(name: string): string | undefined {
    const head = this.prefix ? `${this.registry}/${this.prefix}/` : `${this.registry}/`;
    return name.startsWith(head) && name.length > head.length ? name.slice(head.length) : undefined;
  }

  private url(repo: string, kind: string, ref = ''): URL {
    return new URL(`${this.endpoint.origin}/v2/${this.up(repo)}/${kind}/${ref}`);
  }

  private send(req: Omit<RegistryRequest, 'registry'>): Promise<RegistryResponse> {
    return this.client.send({ ...req, registry: this.endpoint.registry });
  }

  private pull = (repo: string) => [repositoryScope(this.up(repo), 'pull')];
  private push = (repo: string) => [repositoryScope(this.up(repo), 'pull', 'push')];

  async getManifest(repo: string, ref: string, accept: string, signal?: AbortSignal): Promise<ManifestRead | undefined> {
    const what = `GET manifest ${this.nameOf(repo)}`;
    // "*/*" (or nothing) means any type; distribution answers 404 for an OCI manifest unless its type is listed.
    const wide = !accept || accept.split(',').some((a) => a.split(';')[0]!.trim() === '*/*');
    const res = await this.send({ method: 'GET', url: this.url(repo, 'manifests', ref), scopes: this.pull(repo), headers: { accept: wide ? ACCEPT_ALL : accept }, expect: [200, 404], what, signal });
    if (res.status === 404) {
      await res.body.dump().catch(() => {});
      return undefined;
    }
    const bytes = await readAll(res.body, DEFAULT_MAX_MANIFEST_BYTES, what);
    const digest = digestBytes(bytes, isDigest(ref) ? algorithmOf(ref) : 'sha256');
    // The upstream's lie, not the caller's mistake: never passed on, and not a client error.
    if (isDigest(ref) && digest !== ref) throw new BkError('UNAVAILABLE', `${what}: upstream content hashes to ${digest}`, { reason: 'upstream-digest-mismatch' });
    const mediaType = header(res, 'content-type')?.split(';')[0]?.trim() ?? '';
    return { mediaType, digest, bytes };
  }

  async putManifest(repo: string, ref: string, m: ManifestRead, signal?: AbortSignal): Promise<void> {
    const res = await this.send({
      method: 'PUT',
      url: this.url(repo, 'manifests', ref),
      scopes: this.push(repo),
      headers: { 'content-type': m.mediaType, 'content-length': String(m.bytes.length) },
      body: () => m.bytes,
      expect: [200, 201],
      what: `PUT manifest ${this.nameOf(repo)}`,
      signal,
    });
    await res.body.dump().catch(() => {});
  }

  private async del(repo: string, kind: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.send({
      method: 'DELETE',
      url: this.url(repo, kind, digest),
      scopes: [repositoryScope(this.up(repo), 'delete', 'pull', 'push')],
      expect: [200, 202, 204, 404, 405],
      what: `DELETE ${kind} ${this.nameOf(repo)}`,
      signal,
    });
    await res.body.dump().catch(() => {});
    if (res.status === 405) throw new BkError('FAILED_PRECONDITION', `${this.registry} does not allow deletes`, { reason: 'delete-unsupported' });
    return res.status !== 404;
  }

  /** Refused while a manifest reached from a tag names it (named.ts): the registry would delete it anyway. */
  async deleteManifest(repo: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    await refuseStillNamed(this, repo, digest, 'manifest', signal);
    return this.del(repo, 'manifests', digest, signal);
  }

  async deleteBlob(repo: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    await refuseStillNamed(this, repo, digest, 'blob', signal);
    return this.del(repo, 'blobs', digest, signal);
  }

  async blobSize(repo: string, digest: string, signal?: AbortSignal): Promise<number | undefined> {
    const res = await this.send({ method: 'HEAD', url: this.url(repo, 'blobs', digest), scopes: this.pull(repo), expect: [200, 404], what: `HEAD blob ${this.nameOf(repo)}`, signal });
    await res.body.dump().catch(() => {});
    if (res.status === 404) return undefined;
    const n = Number(header(res, 'content-length'));
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  }

  async getBlob(repo: string, digest: string, range: string | undefined, signal?: AbortSignal): Promise<BlobRead | 'range-invalid' | undefined> {
    const res = await this.send({
      method: 'GET',
      url: this.url(repo, 'blobs', digest),
      scopes: this.pull(repo),
      headers: range ? { range } : {},
      expect: [200, 206, 404, 416],
      what: `GET blob ${this.nameOf(repo)}`,
      signal,
    });
    if (res.status === 404 || res.status === 416) {
      await res.body.dump().catch(() => {});
      return res.status === 404 ? undefined : 'range-invalid';
    }
    const length = Number(header(res, 'content-length'));
    const cr = header(res, 'content-range');
    const total = res.status === 206 ? Number(/\/(\d+)$/.exec(cr ?? '')?.[1]) : length;
    if (!Number.isSafeInteger(length) || !Number.isSafeInteger(total) || (res.status === 206 && !cr)) {
      res.body.destroy();
      throw new BkError('UNAVAILABLE', `GET blob ${this.nameOf(repo)}: upstream sent no usable length`, { reason: 'bad-response' });
    }
    return { status: res.status as 200 | 206, size: total, contentRange: cr, length, body: res.body };
  }

  private locationOf(res: RegistryResponse): string {
    const loc = header(res, 'location');
    if (!loc) throw new BkError('UNAVAILABLE', 'upstream sent no upload location', { reason: 'bad-response' });
    const u = new URL(loc, res.url);
    // A sealed state only ever names this upstream's origin (the state is ours, but an upstream could lie).
    if (u.origin !== this.endpoint.origin) throw new BkError('UNAVAILABLE', 'upstream upload location points at another origin', { reason: 'bad-response' });
    return u.toString();
  }

  async startUpload(repo: string, signal?: AbortSignal, algorithm?: string): Promise<UploadState> {
    // Passed on: a registry that knows the parameter digests in that algorithm as the bytes arrive.
    const q = algorithm ? `uploads/?digest-algorithm=${encodeURIComponent(algorithm)}` : 'uploads/';
    const res = await this.send({ method: 'POST', url: this.url(repo, 'blobs', q), scopes: this.push(repo), headers: { 'content-length': '0' }, expect: [202], what: `start upload to ${this.nameOf(repo)}`, signal });
    await res.body.dump().catch(() => {});
    return { kind: 'registry', loc: this.locationOf(res), off: 0, h: { alg: algorithm ?? 'sha256' } };
  }

  async mount(repo: string, digest: string, from: string, signal?: AbortSignal): Promise<boolean> {
    const q = `uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(this.up(from))}`;
    const res = await this.send({
      method: 'POST',
      url: this.url(repo, 'blobs', q),
      scopes: [...this.push(repo), repositoryScope(this.up(from), 'pull')],
      headers: { 'content-length': '0' },
      expect: [201, 202],
      what: `mount into ${this.nameOf(repo)}`,
      signal,
    });
    await res.body.dump().catch(() => {});
    if (res.status === 201) return true;
    // The upstream opened an upload instead; the caller opens its own.
    await this.cancelUpload(repo, { kind: 'registry', loc: this.locationOf(res), off: 0 });
    return false;
  }

  private reg(st: UploadState): RegistryState {
    if (st.kind !== 'registry') throw new BkError('NOT_FOUND', 'upload belongs to another upstream');
    return st;
  }

  /** The hash a session carries; a state from before hashes were carried is good only while empty. */
  private hashOf(st: RegistryState): HashState {
    if (st.h) return st.h;
    if (st.off === 0) return { alg: 'sha256' };
    throw unverifiable('the upload state carries no hash');
  }

  /**
   * The last byte the upstream session holds. Also establishes the
   * upstream's auth before a one-shot body goes out: on a daemon that has
   * not yet talked to this upstream, a 401 would otherwise cost the client's body.
   */
  private async upstreamEnd(repo: string, st: RegistryState, signal?: AbortSignal): Promise<number | undefined> {
    const res = await this.send({ method: 'GET', url: new URL(st.loc), scopes: this.push(repo), expect: [204, 404], what: `upload status ${this.nameOf(repo)}`, signal });
    await res.body.dump().catch(() => {});
    if (res.status === 404) throw new BkError('NOT_FOUND', 'upload session unknown upstream');
    return uploadRangeEnd(res);
  }

  /** Ends a session whose bytes the carried hash no longer describes. */
  private async diverged(repo: string, st: RegistryState, why: string): Promise<never> {
    await this.cancelUpload(repo, st);
    throw unverifiable(why);
  }

  /** Refuses (and cancels) a session the upstream holds more or less of than the state says, and so than its hash covers. */
  private async holding(repo: string, st: RegistryState, signal?: AbortSignal): Promise<void> {
    const end = await this.upstreamEnd(repo, st, signal);
    if (!holds(end, st.off)) await this.diverged(repo, st, `the upstream holds bytes 0-${end}, the upload state ${st.off} bytes`);
  }

  async uploadStatus(repo: string, st: UploadState, signal?: AbortSignal): Promise<UploadState> {
    const cur = this.reg(st);
    this.hashOf(cur);
    await this.holding(repo, cur, signal);
    return cur;
  }

  async appendUpload(repo: string, st: UploadState, body: Readable, length: number | undefined, signal?: AbortSignal): Promise<UploadState> {
    const cur = this.reg(st);
    const { loc, off } = cur;
    const hasher = await resumeHash(this.hashOf(cur));
    await this.holding(repo, cur, signal);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (length !== undefined) {
      headers['content-length'] = String(length);
      if (length > 0) headers['content-range'] = `${off}-${off + length - 1}`;
    }
    // Hashed on the way: the new state is handed out only if the upstream took exactly these bytes.
    const pass = new HashingPass(hasher);
    body.once('error', (e) => pass.destroy(e));
    const sent = body.pipe(pass);
    const res = await this.send({ method: 'PATCH', url: new URL(loc), scopes: this.push(repo), headers, body: () => sent, replayable: false, expect: [202], what: `PATCH upload ${this.nameOf(repo)}`, signal });
    await res.body.dump().catch(() => {});
    const next = { kind: 'registry' as const, loc: this.locationOf(res), off: off + pass.seen, h: hasher.save() };
    const end = uploadRangeEnd(res) ?? (await this.upstreamEnd(repo, next, signal));
    if (!holds(end, next.off)) await this.diverged(repo, next, `the upstream took bytes 0-${end} of ${next.off} sent`);
    return next;
  }

  /** The hasher that checks the final digest of a session that already holds bytes. */
  private async resumed(repo: string, st: RegistryState, digest: string): Promise<Hasher> {
    const h = this.hashOf(st);
    const alg = algorithmOf(digest);
    if (h.alg !== alg) await this.diverged(repo, st, `the upload was hashed as ${h.alg} (POST ?digest-algorithm= chooses), its digest is ${alg}`);
    return resumeHash(h);
  }

  async finishUpload(repo: string, st: UploadState, digest: string, body: Readable | undefined, length: number | undefined, signal?: AbortSignal): Promise<void> {
    let cur = this.reg(st);
    if (body && length === undefined) {
      // No length to verify against while streaming: append, then commit without a body.
      const next = await this.appendUpload(repo, st, body, undefined, signal);
      cur = this.reg(next);
      body = undefined;
    }
    // What came before this request was hashed as it passed (appendUpload); a whole body in this request is hashed by node's crypto.
    const resumed = cur.off > 0 ? await this.resumed(repo, cur, digest) : undefined;
    await this.holding(repo, cur, signal);
    const url = new URL(cur.loc);
    url.searchParams.append('digest', digest);
    let sent: Readable | undefined;
    let checkError: unknown;
    if (body && length !== undefined && length > 0) {
      // Hold back the last chunk until the digest is verified, so a mismatch
      // never reaches the upstream as a complete body it could commit. Read
      // straight off the request (no Transform between): every byte of a push crosses this.
      sent = holdbackVerified(body, { mediaType: '', digest, size: length }, { hasher: resumed });
      sent.once('error', (e) => (checkError = e));
    } else {
      body?.resume();
      // Nothing more comes: the digest is checked here, and a mismatch never reaches the upstream.
      const got = resumed ? resumed.digest() : digestBytes(Buffer.alloc(0), algorithmOf(digest));
      if (got !== digest) {
        await this.cancelUpload(repo, cur);
        throw dataLoss(`digest mismatch: expected ${digest}, got ${got}`, { reason: 'digest-mismatch' });
      }
    }
    try {
      const res = await this.send({
        method: 'PUT',
        url,
        scopes: this.push(repo),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(sent ? length : 0) },
        body: sent ? () => sent! : undefined,
        replayable: sent ? false : undefined,
        expect: [201],
        what: `commit upload ${this.nameOf(repo)}`,
        signal,
      });
      await res.body.dump().catch(() => {});
      const stored = header(res, 'docker-content-digest');
      // distribution answers with its canonical (sha256) digest for a blob pushed under another algorithm.
      if (stored && stored !== digest && (!isDigest(stored) || algorithmOf(stored) === algorithmOf(digest))) throw dataLoss(`upstream stored ${stored}`, { reason: 'digest-mismatch' });
    } catch (err) {
      if (checkError) {
        // The upstream never got the whole body; its session is of no use to anyone now.
        await this.cancelUpload(repo, cur);
        throw checkError;
      }
      throw err;
    }
  }

  async cancelUpload(repo: string, st: UploadState): Promise<boolean> {
    try {
      const res = await this.send({ method: 'DELETE', url: new URL(this.reg(st).loc), scopes: this.push(repo), expect: [200, 202, 204, 404], what: `cancel upload ${this.nameOf(repo)}`, retry: false });
      await res.body.dump().catch(() => {});
      return res.status !== 404;
    } catch {
      // Registries purge abandoned sessions on their own.
      return true;
    }
  }

  /** Follows `Link: <...>; rel="next"` pages of a list endpoint. */
  private async list(first: URL, scopes: string[], key: 'tags' | 'repositories', signal?: AbortSignal): Promise<string[] | undefined> {
    const out: string[] = [];
    let url: URL | undefined = first;
    while (url && out.length < MAX_LIST) {
      const res = await this.send({ method: 'GET', url, scopes, expect: [200, 404], what: `list ${key}`, signal });
      if (res.status === 404) {
        await res.body.dump().catch(() => {});
        return out.length ? out : undefined;
      }
      const text = (await readAll(res.body, 16 << 20, `${key} list`)).toString('utf8');
      // An answer that is not the list (not JSON, null, another shape) is the upstream breaking the protocol.
      const broken = () => new BkError('UNAVAILABLE', `list ${key}: upstream sent no JSON object with a ${key} array`, { reason: 'bad-response' });
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(text) as Record<string, unknown>;
      } catch {
        throw broken();
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw broken();
      if (!Array.isArray(doc[key]) && doc[key] !== undefined && doc[key] !== null) throw broken();
      const page = Array.isArray(doc[key]) ? (doc[key] as unknown[]).filter((t): t is string => typeof t === 'string') : [];
      out.push(...page);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
      const next: URL | undefined = link && page.length ? new URL(link[1]!, url) : undefined;
      url = next && next.origin === this.endpoint.origin ? next : undefined;
    }
    return out;
  }

  async tags(repo: string, signal?: AbortSignal): Promise<string[] | undefined> {
    const t = await this.list(new URL(`${this.url(repo, 'tags', 'list')}?n=${LIST_PAGE}`), this.pull(repo), 'tags', signal);
    return t && [...new Set(t)].sort();
  }

  async catalog(signal?: AbortSignal): Promise<string[]> {
    const names = (await this.list(new URL(`${this.endpoint.origin}/v2/_catalog?n=${LIST_PAGE}`), ['registry:catalog:*'], 'repositories', signal)) ?? [];
    const head = this.prefix ? `${this.prefix}/` : '';
    return names.filter((n) => n.startsWith(head) && n.length > head.length).map((n) => n.slice(head.length));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
