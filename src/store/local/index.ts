// The local backend (`type=local`): an OCI image layout directory, as
// BuildKit's local cache exporter writes it (blobs/<alg>/<hex>, index.json
// entries tagged with org.opencontainers.image.ref.name, an oci-layout file).
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { asBkError, invalidArgument, isNotFound, notFound } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { isDigest } from '../../oci/digest.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { detectManifestMediaType } from '../../oci/manifest.js';
import { MAX_METADATA_BYTES, toReadable, VerifyStream } from '../content.js';
import type { ContentStore, FetchOptions, PushOptions, PushResult } from '../types.js';
import { blobIntact, forgetIntact, readVerified, rememberIntact, sizeMatches } from './blob-file.js';
import { contentStorePath, ensureBlobDir, ensureLayout, readIndex, putTag, updateIndex } from './layout.js';
import type { ImageIndex } from '../../oci/manifest.js';
import { badPlace, checkDirectory, fsError, readRegular } from './place.js';
import { createLease, pruneLayout, reachable, type Lease, type PruneOptions, type PruneResult } from './prune.js';
import { ingestPath } from './stale.js';

export { removeStaleTempFiles } from './stale.js';

export interface LocalStoreOptions {
  /** Create the layout on first write (exports). Imports leave it false. */
  create?: boolean;
}

export class LocalStore implements ContentStore {
  readonly location: string;
  private ready?: Promise<void>;

  constructor(
    readonly dir: string,
    private readonly opts: LocalStoreOptions = {},
  ) {
    this.dir = path.resolve(dir);
    this.location = `local:${this.dir}`;
  }

  blobPath(digest: string): string {
    return contentStorePath(this.dir, digest);
  }

  private async prepare(): Promise<void> {
    if (!this.opts.create) return this.prepareRead();
    this.ready ??= ensureLayout(this.dir).catch((err: unknown) => {
      throw fsError(err, this.location);
    });
    await this.ready;
  }

  /** Streams a blob, always verified against `desc` (the prefix before an offset included): see blob-file.ts. */
  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    try {
      return await readVerified(this.blobPath(desc.digest), desc, this.location, opts.offset ?? 0, opts.signal);
    } catch (err) {
      if (isNotFound(err)) throw notFound(`blob ${desc.digest} not found in ${this.location}`);
      throw asBkError(err);
    }
  }

  /**
   * True only for a regular file of the right size whose bytes hash to the
   * digest (remembered per file version, see blob-file.ts). A blob that
   * fails is absent: push() writes a good copy over it.
   */
  async exists(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    return blobIntact(this.blobPath(desc.digest), desc, opts.signal);
  }

  async push(desc: Descriptor, content: Readable | Uint8Array, opts: PushOptions = {}): Promise<PushResult> {
    const file = this.blobPath(desc.digest);
    // The content may fail while we look at the disk; its error is then kept
    // for pipeline() below instead of crashing the process as unhandled.
    const source = toReadable(content);
    source.on('error', () => undefined);
    // A same-digest blob is skipped only once its bytes are proven (exists()).
    if (await this.exists(desc, { signal: opts.signal })) {
      source.destroy();
      return { outcome: 'exists', bytes: 0 };
    }
    await this.prepare();
    await ensureBlobDir(file);
    // Temp name in the same directory so the final rename is atomic; it names
    // this process, so a crash leaves a file prune can tell is stale.
    const tmp = ingestPath(file);
    let sent = 0;
    const verify = new VerifyStream(desc);
    if (opts.onProgress) {
      verify.on('data', (c: Buffer) => opts.onProgress!((sent += c.length)));
    }
    try {
      // flush: fsync before close, so a rename never publishes unwritten data.
      // A 4 MiB buffer lets the next chunk be hashed while the last one is written.
      await pipeline(source, verify, createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true, highWaterMark: 4 << 20 }), {
        signal: opts.signal,
      });
      // Replaces a corrupt or wrong-size file of that name in one step.
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      // A directory in the blob's place cannot be replaced in one step, and is not ours to remove.
      if (code === 'EISDIR' || code === 'ENOTEMPTY') throw badPlace(`blob ${desc.digest} in ${this.location} is a directory`, err);
      throw fsError(err, `blob ${desc.digest} in ${this.location}`);
    }
    await rememberIntact(file, desc.digest);
    return { outcome: 'uploaded', bytes: desc.size };
  }

  async resolve(reference: string): Promise<Descriptor> {
    await this.prepareRead();
    const idx = await readIndex(this.dir);
    if (isDigest(reference)) {
      const entry = idx.manifests.find((m) => m.digest === reference);
      if (entry) return { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
      return this.describeBlob(reference);
    }
    const entry = idx.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === reference);
    if (!entry) throw notFound(`tag ${JSON.stringify(reference)} not found in ${this.location}`);
    return { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
  }

  /** Lists the tags of index.json, in file order. */
  async tags(): Promise<{ tag: string; desc: Descriptor }[]> {
    const idx = await readIndex(this.dir);
    return idx.manifests
      .filter((m) => m.annotations?.[ANNOTATION_REF_NAME] !== undefined)
      .map((m) => ({ tag: m.annotations![ANNOTATION_REF_NAME]!, desc: { mediaType: m.mediaType, digest: m.digest, size: m.size } }));
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    if (!tag) throw invalidArgument('empty tag');
    if (!(await this.exists(desc))) throw notFound(`cannot tag ${desc.digest}: manifest not in ${this.location}`);
    await this.prepare();
    await updateIndexOf(this.dir, this.location, async (idx) => {
      // Under the index lock, which prune holds while deleting: every blob
      // the manifest names must still be here, or the tag would dangle. A
      // size check is enough here (the lock is held): the export that is
      // tagging has just proven each blob's bytes with exists() or push().
      for (const d of (await reachable(this.dir, [desc])).values()) {
        if (!(await sizeMatches(this.blobPath(d.digest), d))) {
          throw notFound(`cannot tag ${desc.digest}: blob ${d.digest} is missing from ${this.location}`);
        }
      }
      return putTag(idx, desc, tag);
    });
  }

  /** Claims blobs against a concurrent prune for the length of an export. */
  async lease(): Promise<Lease> {
    await this.prepare();
    return createLease(this.dir).catch((err: unknown) => {
      throw fsError(err, `a lease in ${this.location}`);
    });
  }

  /** Deletes blobs that index.json does not reach and no live export has claimed (see prune.ts). */
  async prune(opts: PruneOptions = {}): Promise<PruneResult> {
    await this.prepareRead();
    return pruneLayout(this.dir, opts);
  }

  async delete(desc: Descriptor): Promise<void> {
    forgetIntact(this.blobPath(desc.digest));
    try {
      await fs.unlink(this.blobPath(desc.digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`blob ${desc.digest} not found in ${this.location}`);
      throw asBkError(err);
    }
  }

  private async prepareRead(): Promise<void> {
    await checkDirectory(this.dir);
  }

  /** A manifest named by digest only (`digest=` imports): size from the file, type from its content. */
  private async describeBlob(digest: string): Promise<Descriptor> {
    const file = this.blobPath(digest);
    const st = await fs.lstat(file).catch(() => undefined);
    if (!st?.isFile()) throw notFound(`manifest ${digest} not found in ${this.location}`);
    if (st.size > MAX_METADATA_BYTES) {
      return { mediaType: '', digest, size: st.size };
    }
    // Only sniffed for its type: the importer fetches it again, verified.
    const data = await readRegular(file, `manifest ${digest}`, MAX_METADATA_BYTES);
    let mediaType = '';
    try {
      mediaType = detectManifestMediaType(parseJsonBytes(data, digest));
    } catch {
      // Not a manifest: leave the type empty and let the importer report it.
    }
    return { mediaType, digest, size: data.length };
  }
}

/** updateIndex with the disk's refusals typed (fsError). */
async function updateIndexOf(dir: string, where: string, update: (idx: ImageIndex) => Promise<ImageIndex>): Promise<void> {
  try {
    await updateIndex(dir, update);
  } catch (err) {
    throw fsError(err, `index.json of ${where}`);
  }
}
