// The embedded store as an upstream (`--gateway-upstream local`): gateway
// repository R is the OCI layout <root>/R, the same directory (and the same
// resource name, local/R) that `type=local,dest=R` names on the gRPC surface.
// Each repository has its own blobs, so a blob is served from R only if R
// holds it. Uploads are ingest files under <root>/.gateway-uploads, named in
// the sealed state, so a daemon sharing the root can finish what another began;
// the digest is verified when the ingest file is published (LocalStore.push
// hashes it), whichever way its bytes came.
// DELETE never removes what anything still names: a manifest's index.json
// entries and blob go together under the layout's index lock, a blob only
// when a full walk of the layout proves no manifest it keeps names it.
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BkError, isNotFound } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { encodeIndex } from '../../oci/manifest.js';
import { isDigest } from '../../oci/digest.js';
import { goField, isObject, parseJsonBytes } from '../../oci/go-json.js';
import { readAll } from '../../store/content.js';
import { LocalStore } from '../../store/local/index.js';
import { INDEX_FILE, OCI_LAYOUT_FILE, readIndex, withIndexLock, writeFileAtomic } from '../../store/local/layout.js';
import { sizeMatches } from '../../store/local/blob-file.js';
import { leasedDigests, namedBy, reachable, readLayoutStrict } from '../../store/local/prune.js';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../../store/registry/manifests.js';
import { UPLOAD_TTL_SECONDS, type BlobRead, type ManifestRead, type Upstream, type UploadState } from './types.js';

const INGEST_DIR = '.gateway-uploads';
const MAX_CATALOG_DEPTH = 8;
/** What an OCI layout holds at its top (https://github.com/opencontainers/image-spec/blob/main/image-layout.md). */
const LAYOUT_ENTRIES = new Set(['blobs', INDEX_FILE, OCI_LAYOUT_FILE]);
/**
 * An ingest file untouched this long can never be finished: every location naming it has expired
 * (each write, and each status answer, hands out a new one and touches the file). A registry
 * purges its abandoned sessions; so does this, or clients that walk away would fill the disk.
 */
const STALE_INGEST_MS = UPLOAD_TTL_SECONDS * 1000 + 3600_000;

/** A delete refused because the layout could not be walked to prove nothing names the digest. */
function unprovable(repo: string, err: unknown): BkError {
  return new BkError('FAILED_PRECONDITION', `cannot prove nothing in ${repo} still names it: ${(err as Error).message}`, { reason: 'delete-unprovable' });
}

/** A manifest or index of schema 2 whose descriptors decode; what putManifest lets in. */
function isManifestBytes(bytes: Buffer): boolean {
  try {
    const doc = parseJsonBytes(bytes, 'manifest');
    namedBy(doc);
    return isObject(doc) && goField(doc, 'schemaVersion') === 2;
  } catch {
    return false;
  }
}

export class LocalUpstream implements Upstream {
  private lastPurge = 0;

  constructor(
    readonly root: string,
    /** How often a new upload looks for stale ingest files. */
    private readonly purgeEveryMs = 60_000,
  ) {
    this.root = path.resolve(root);
  }

  private store(repo: string, create = false): LocalStore {
    // Gateway names follow the repository grammar (no '.', '..' or empty segments), so they stay inside the root.
    return new LocalStore(this.dirOf(repo), { create });
  }

  nameOf(repo: string): string {
    return `local/${repo}`;
  }

  repoOf(name: string): string | undefined {
    return name.startsWith('local/') && name.length > 6 ? name.slice(6) : undefined;
  }

  async getManifest(repo: string, ref: string): Promise<ManifestRead | undefined> {
    const s = this.store(repo);
    try {
      const desc = await s.resolve(ref);
      // A digest that names a plain blob is not a manifest.
      if (!desc.mediaType) return undefined;
      const bytes = await readAll(await s.fetch(desc), DEFAULT_MAX_MANIFEST_BYTES, desc.digest);
      // Not in index.json, the media type is only sniffed from the bytes, and any JSON blob (an image
      // or cache config, "{}") sniffs as some manifest: serve it only when it decodes as one, as a
      // registry answers only for what was pushed as a manifest.
      if (isDigest(ref) && !(await readIndex(this.dirOf(repo))).manifests.some((m) => m.digest === ref) && !isManifestBytes(bytes)) return undefined;
      return { mediaType: desc.mediaType, digest: desc.digest, bytes };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async putManifest(repo: string, ref: string, m: ManifestRead): Promise<void> {
    const s = this.store(repo, true);
    // Before its bytes land: a manifest blob is served by digest as soon as it is in the layout,
    // so a refused manifest must leave nothing behind (tag() checks again, under the lock).
    for (const d of Object.values(namedBy(parseJsonBytes(m.bytes, m.digest))).flat()) {
      if (d.digest && !(await sizeMatches(s.blobPath(d.digest), d))) {
        throw new BkError('FAILED_PRECONDITION', `manifest ${m.digest} names ${d.digest}, which ${repo} lacks`, { reason: 'manifest-blob-unknown' });
      }
    }
    const desc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    await s.push(desc, m.bytes);
    try {
      if (!isDigest(ref)) await s.tag(desc, ref);
    } catch (err) {
      // tag() checks, under the index lock, that every blob the manifest reaches is here.
      if (isNotFound(err)) throw new BkError('FAILED_PRECONDITION', (err as Error).message, { reason: 'manifest-blob-unknown' });
      throw err;
    }
  }

  private dirOf(repo: string): string {
    const parts = repo.split('/');
    // Valid distribution names, but the directory would be an entry of another repository's layout
    // (its blob store, its index): refused from the name alone, before anything is read or written.
    if (parts.some((p) => LAYOUT_ENTRIES.has(p))) throw new BkError('INVALID_ARGUMENT', `repository ${repo} names an entry of an OCI layout`, { reason: 'name-invalid' });
    return path.join(this.root, ...parts);
  }

  /**
   * Refuses to delete `digest` while a manifest of `keep` names it (walked
   * strictly, each manifest read and verified: what cannot be walked cannot
   * be proven unneeded) or a live export's lease claims it, as prune does.
   */
  private async refuseNamed(repo: string, keep: Descriptor[], digest: string): Promise<void> {
    let named: Map<string, Descriptor>;
    try {
      named = await reachable(this.dirOf(repo), keep, true);
    } catch (err) {
      throw unprovable(repo, err);
    }
    if (named.has(digest)) throw new BkError('FAILED_PRECONDITION', `a manifest in ${repo} still names ${digest}`, { reason: 'still-named' });
    // Read only (dryRun): removing dead leases is prune's work.
    if ((await leasedDigests(this.dirOf(repo), true)).has(digest)) throw new BkError('FAILED_PRECONDITION', `an export in progress claims ${digest} in ${repo}`, { reason: 'still-named' });
  }

  /** Removes a blob file of the layout; false when it was not there. */
  private async unlink(repo: string, digest: string): Promise<boolean> {
    try {
      await this.store(repo).delete({ mediaType: '', digest, size: 0 });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * DELETE of a manifest by digest: its index.json entries (every tag naming
   * it) go in one atomic replacement, then its blob, both under the index
   * lock that tagging and prune hold, so no tag can come to name it in
   * between. What it names stays for `bkcache prune`. Refused while another
   * manifest the layout keeps (an index's child) names it, or an export claims it.
   */
  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    const dir = this.dirOf(repo);
    if (!(await fs.stat(path.join(dir, INDEX_FILE)).catch(() => undefined))) return false;
    return withIndexLock(dir, async () => {
      const idx = await readIndex(dir);
      const rest = idx.manifests.filter((m) => m.digest !== digest);
      const tagged = rest.length !== idx.manifests.length;
      // Pushed by digest only, a manifest has no entry; a plain blob of that digest is not a manifest.
      if (!tagged && !(await this.getManifest(repo, digest))) return false;
      await this.refuseNamed(repo, rest, digest);
      if (tagged) await writeFileAtomic(path.join(dir, INDEX_FILE), encodeIndex({ ...idx, manifests: rest }));
      await this.unlink(repo, digest);
      return true;
    });
  }

  /**
   * DELETE of a blob: only when a full walk of the layout's index proves no
   * manifest it keeps names it and no live export claims it (under the index
   * lock, so none can be tagged meanwhile); otherwise refused, and nothing is deleted.
   */
  async deleteBlob(repo: string, digest: string): Promise<boolean> {
    const dir = this.dirOf(repo);
    if ((await this.blobSize(repo, digest)) === undefined) return false;
    return withIndexLock(dir, async () => {
      let entries: Descriptor[];
      try {
        entries = await readLayoutStrict(dir);
      } catch (err) {
        throw unprovable(repo, err);
      }
      await this.refuseNamed(repo, entries, digest);
      return this.unlink(repo, digest);
    });
  }

  async blobSize(repo: string, digest: string): Promise<number | undefined> {
    const st = await fs.stat(this.store(repo).blobPath(digest)).catch(() => undefined);
    return st?.isFile() ? st.size : undefined;
  }

  async getBlob(repo: string, digest: string, range: string | undefined): Promise<BlobRead | 'range-invalid' | undefined> {
    const size = await this.blobSize(repo, digest);
    if (size === undefined) return undefined;
    const s = this.store(repo);
    if (!range) return { status: 200, size, length: size, body: await s.fetch({ mediaType: '', digest, size }) };
    const m = /^bytes=(\d+)-(\d*)$/.exec(range)!;
    const start = Number(m[1]);
    const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start >= size || end < start) return 'range-invalid';
    const fh = await fs.open(s.blobPath(digest), 'r');
    const body = createReadStream('', { fd: fh, start, end, highWaterMark: 1 << 20 });
    return { status: 206, size, length: end - start + 1, contentRange: `bytes ${start}-${end}/${size}`, body };
  }

  private ingest(st: UploadState): string {
    if (st.kind !== 'local' || !/^[0-9a-f-]{36}$/.test(st.id)) throw new BkError('NOT_FOUND', 'upload belongs to another upstream');
    return path.join(this.root, INGEST_DIR, st.id);
  }

  /** Removes ingest files of sessions nobody can finish any more; at most every purgeEveryMs. */
  private async purgeStale(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPurge < this.purgeEveryMs) return;
    this.lastPurge = now;
    const dir = path.join(this.root, INGEST_DIR);
    for (const f of await fs.readdir(dir).catch(() => [])) {
      const st = await fs.stat(path.join(dir, f)).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_INGEST_MS) await fs.rm(path.join(dir, f), { force: true });
    }
  }

  async startUpload(repo: string): Promise<UploadState> {
    this.dirOf(repo); // a name it can never publish into opens no session
    await this.purgeStale();
    const id = randomUUID();
    await fs.mkdir(path.join(this.root, INGEST_DIR), { recursive: true });
    await fs.writeFile(path.join(this.root, INGEST_DIR, id), '', { flag: 'wx' });
    return { kind: 'local', id, off: 0 };
  }

  async mount(repo: string, digest: string, from: string): Promise<boolean> {
    const size = await this.blobSize(from, digest);
    if (size === undefined) return false;
    const desc = { mediaType: '', digest, size };
    // Copied, verified on the way: a layout never points into another repository's blobs.
    await this.store(repo, true).push(desc, await this.store(from).fetch(desc));
    return true;
  }

  async uploadStatus(repo: string, st: UploadState): Promise<UploadState> {
    const off = await this.uploadOffset(repo, st);
    // The answer carries a new location: the session lives on from now (see STALE_INGEST_MS).
    const now = new Date();
    await fs.utimes(this.ingest(st), now, now).catch(() => {});
    return { ...st, off };
  }

  private async uploadOffset(_repo: string, st: UploadState): Promise<number> {
    const st2 = await fs.stat(this.ingest(st)).catch(() => undefined);
    if (!st2?.isFile()) throw new BkError('NOT_FOUND', 'upload session unknown');
    return st2.size;
  }

  async appendUpload(repo: string, st: UploadState, body: Readable, length: number | undefined): Promise<UploadState> {
    if ((await this.uploadOffset(repo, st)) !== st.off) throw new BkError('FAILED_PRECONDITION', 'upload offset moved', { reason: 'range-invalid' });
    const file = this.ingest(st);
    await pipeline(body, createWriteStream(file, { flags: 'a' }));
    const off = await this.uploadOffset(repo, st);
    if (length !== undefined && off !== st.off + length) throw new BkError('DATA_LOSS', 'chunk shorter than its Content-Length', { reason: 'size-mismatch' });
    return { ...st, off };
  }

  async finishUpload(repo: string, st: UploadState, digest: string, body: Readable | undefined, length: number | undefined): Promise<void> {
    let cur = st;
    if (body) cur = await this.appendUpload(repo, st, body, length);
    else if ((await this.uploadOffset(repo, st)) !== st.off) throw new BkError('FAILED_PRECONDITION', 'upload offset moved', { reason: 'range-invalid' });
    const file = this.ingest(cur);
    // push() verifies digest and size while it copies, and publishes by rename only when both match.
    try {
      await this.store(repo, true).push({ mediaType: '', digest, size: cur.off }, createReadStream(file, { highWaterMark: 1 << 20 }));
    } catch (err) {
      // Wrong bytes can never become right: the session is over, as a registry ends it.
      if (err instanceof BkError && err.code === 'DATA_LOSS') await fs.rm(file, { force: true });
      throw err;
    }
    await fs.rm(file, { force: true });
  }

  async cancelUpload(_repo: string, st: UploadState): Promise<boolean> {
    return fs.rm(this.ingest(st)).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    );
  }

  async tags(repo: string): Promise<string[] | undefined> {
    const dir = this.dirOf(repo);
    const has = await fs.stat(path.join(dir, 'index.json')).catch(() => undefined);
    if (!has) return undefined;
    const idx = await readIndex(dir);
    const tags = idx.manifests.map((m) => m.annotations?.[ANNOTATION_REF_NAME]).filter((t): t is string => !!t);
    return [...new Set(tags)].sort();
  }

  async catalog(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (rel: string[], depth: number): Promise<void> => {
      if (depth > MAX_CATALOG_DEPTH) return;
      const dir = path.join(this.root, ...rel);
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      if (rel.length && entries.some((e) => e.isFile() && e.name === 'index.json')) out.push(rel.join('/'));
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'blobs') await walk([...rel, e.name], depth + 1);
    };
    await walk([], 0);
    return out.sort();
  }

  async close(): Promise<void> {}
}
