// index.json of an OCI image layout, read and replaced the way BuildKit's
// ociindex package does (client/ociindex): an entry per tag, named by the
// org.opencontainers.image.ref.name annotation; a new entry for an existing
// tag replaces it in place. Unlike BuildKit, the file is replaced atomically
// (write to a temp file, fsync, rename) under a lock, so concurrent writers
// never lose entries and readers never see a half-written file.
// https://github.com/opencontainers/image-spec/blob/main/image-layout.md
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { invalidArgument } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { parseDigest } from '../../oci/digest.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, encodeIndex, type ImageIndex } from '../../oci/manifest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}';
// Not BuildKit's own "index.json.lock": that one is taken with flock on a file,
// and proper-lockfile's lock is a directory.
const LOCK_NAME = '.bkcache-index';

/**
 * Path of a blob under `dir`, blobs/<alg>/<hex>: the layout of an OCI image
 * layout, and of buildkitd's and containerd's content stores alike.
 */
export function contentStorePath(dir: string, digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return path.join(dir, 'blobs', algorithm, hex);
}

export async function readIndex(dir: string): Promise<ImageIndex> {
  let data: Buffer;
  try {
    data = await fs.readFile(path.join(dir, 'index.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, manifests: [] };
    throw err;
  }
  if (data.length === 0) return { schemaVersion: 2, manifests: [] };
  try {
    return decodeIndex(parseJsonBytes(data, `${dir}/index.json`));
  } catch (err) {
    throw invalidArgument(`${dir}/index.json is not a valid OCI index: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes `data` to `file` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function ensureLayout(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs'), { recursive: true });
  try {
    await fs.writeFile(path.join(dir, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Runs `fn` holding the layout's index lock (cross-process, stale locks are reclaimed). */
export async function withIndexLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, LOCK_NAME + '.lock'),
    retries: { retries: 200, factor: 1.2, minTimeout: 5, maxTimeout: 200, randomize: true },
    stale: 10_000,
    realpath: false,
  });
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Adds or replaces the entry for `tag`, as BuildKit's ociindex.Put does. */
export function putTag(idx: ImageIndex, desc: Descriptor, tag: string): ImageIndex {
  const entry: Descriptor = {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    annotations: { ...(desc.annotations ?? {}), [ANNOTATION_REF_NAME]: tag },
  };
  const manifests = [...idx.manifests];
  const at = manifests.findIndex((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag);
  if (at >= 0) manifests[at] = entry;
  else manifests.push(entry);
  return { ...idx, schemaVersion: idx.schemaVersion || 2, manifests };
}

export async function updateIndex(dir: string, update: (idx: ImageIndex) => ImageIndex | Promise<ImageIndex>): Promise<void> {
  await withIndexLock(dir, async () => {
    const next = await update(await readIndex(dir));
    await writeFileAtomic(path.join(dir, 'index.json'), encodeIndex(next));
  });
}
