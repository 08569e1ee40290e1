// index.json of an OCI image layout, read and replaced the way BuildKit's
// ociindex package does (client/ociindex): an entry per tag, named by the
// org.opencontainers.image.ref.name annotation; a new entry for an existing
// tag replaces it in place. Unlike BuildKit, the file is replaced atomically
// (write to a temp file, fsync, rename) under a lock, so concurrent writers
// never lose entries and readers never see a half-written file.
// https://github.com/opencontainers/image-spec/blob/main/image-layout.md
import { promises as fs } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { BkError, invalidArgument, isNotFound } from '../../errors.js';
import { ANNOTATION_REF_NAME, type Descriptor } from '../../oci/descriptor.js';
import { parseDigest } from '../../oci/digest.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, encodeIndex, type ImageIndex } from '../../oci/manifest.js';
import { MAX_METADATA_BYTES } from '../content.js';
import { badPlace, checkDirectory, fsError, makeDirectory, readRegular } from './place.js';
import { tempPath } from './stale.js';

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

export const INDEX_FILE = 'index.json';
const EMPTY_INDEX = '{"schemaVersion":2,"manifests":[]}';

/**
 * Reads index.json for imports and tagging. Like BuildKit's ociindex, a
 * missing or empty file reads as an index without entries (prune, which
 * deletes, is stricter: see prune.ts). The file must be regular and at most
 * 16 MiB: a FIFO or a huge file there is refused, not waited on.
 */
export async function readIndex(dir: string): Promise<ImageIndex> {
  let data: Buffer;
  try {
    data = await readRegular(path.join(dir, INDEX_FILE), `${dir}/${INDEX_FILE}`, MAX_METADATA_BYTES);
  } catch (err) {
    if (isNotFound(err)) return { schemaVersion: 2, manifests: [] };
    throw err;
  }
  if (data.length === 0) return { schemaVersion: 2, manifests: [] };
  try {
    return decodeIndex(parseJsonBytes(data, `${dir}/index.json`));
  } catch (err) {
    throw invalidArgument(`${dir}/index.json is not a valid OCI index: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes `data` to a new temp file next to `file`, fsynced, and returns its path. */
async function writeTemp(file: string, data: string | Uint8Array): Promise<string> {
  const tmp = tempPath(file);
  const fh = await fs.open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  return tmp;
}

/** Writes `data` to `file` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = await writeTemp(file, data);
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes `data` to `file` only if no file is there, atomically: a temp file
 * hard-linked into place, which fails when the name exists. Unlike a rename
 * it never replaces what a concurrent writer put there first.
 */
async function createFileAtomic(file: string, data: string): Promise<void> {
  const tmp = await writeTemp(file, data);
  try {
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** A layout file (index.json, oci-layout) must be a regular file when present; a symlink could point writes anywhere. */
async function checkLayoutFile(dir: string, name: string): Promise<boolean> {
  const st = await fs.lstat(path.join(dir, name)).catch(() => undefined);
  if (st && !st.isFile()) throw badPlace(`${dir}/${name} is not a regular file`);
  return !!st;
}

/**
 * Prepares `dir` for writing: a directory on a real file system (place.ts),
 * then index.json, then oci-layout, then blobs/. index.json comes first so
 * that a layout with an oci-layout file always has an index: an export that
 * dies half-way leaves a valid layout whose blobs prune may collect, never a
 * directory prune has to guess about. A directory that already holds blobs/
 * but is no OCI layout (buildkitd's or containerd's content store) is
 * refused: writing a layout there would hand another program's blobs to prune.
 * (A directory with blobs/ and either file is taken as a layout, as BuildKit
 * and older bkcache versions write them.)
 */
export async function ensureLayout(dir: string): Promise<void> {
  await checkDirectory(dir, { create: true });
  const hasLayout = await checkLayoutFile(dir, OCI_LAYOUT_FILE);
  const hasIndex = await checkLayoutFile(dir, INDEX_FILE);
  const blobs = await fs.lstat(path.join(dir, 'blobs')).catch(() => undefined);
  if (blobs && !blobs.isDirectory()) throw badPlace(`${dir}/blobs is not a directory`);
  if (blobs && !hasLayout && !hasIndex) {
    throw badPlace(`${dir} holds blobs/ but neither oci-layout nor index.json: it is another store's directory, not an OCI layout`);
  }
  if (!hasIndex) await createFileAtomic(path.join(dir, INDEX_FILE), EMPTY_INDEX);
  if (!hasLayout) await createFileAtomic(path.join(dir, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT);
  await makeDirectory(path.join(dir, 'blobs'));
}

/** Makes blobs/<alg> of a layout (one level, checked: never a symlink). */
export async function ensureBlobDir(file: string): Promise<void> {
  await makeDirectory(path.dirname(file));
}

/** proper-lockfile's stale time; tests shorten it (its floor is 2 s). */
export const INDEX_LOCK_STALE_MS = { value: 10_000 };
/** Attempts to take a held lock (about 40 s in all, past the stale time); tests shorten it. */
export const INDEX_LOCK_RETRIES = { value: 200 };

/**
 * Why the lock could not be taken, typed: another writer holding it past
 * our wait is UNAVAILABLE (try again), the disk's refusals are what
 * fsError makes of them (a read-only layout: FAILED_PRECONDITION).
 */
function lockError(err: unknown, dir: string, lockPath: string): BkError {
  if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
    return new BkError('UNAVAILABLE', `index.json of ${dir} is locked by another writer (${lockPath}); try again`, { cause: err, reason: 'locked' });
  }
  return fsError(err, `the index lock ${lockPath}`);
}

/**
 * Runs `fn` holding the layout's index lock (cross-process, stale locks are
 * reclaimed). The lock can be lost while held: its directory removed, or not
 * refreshed within the stale time, so another process may have taken it.
 * proper-lockfile's default answer throws from a timer, which crashed the
 * whole process; here the loss is recorded, `held()` throws UNAVAILABLE from
 * then on (call it before each write that needs the lock), and so does the
 * end of `fn`.
 */
export async function withIndexLock<T>(dir: string, fn: (held: () => void) => Promise<T>): Promise<T> {
  let lost: Error | undefined;
  const lockPath = path.join(dir, LOCK_NAME + '.lock');
  // The lock is a directory; anything else there (a file, a symlink out of
  // the layout) would be waited on, then "reclaimed" as stale, for 40 s.
  const st = await fs.lstat(lockPath).catch(() => undefined);
  if (st && !st.isDirectory()) throw badPlace(`${lockPath} is not a directory (the index lock is one); remove it if nothing writes to ${dir}`);
  const release = await lockfile
    .lock(dir, {
      lockfilePath: lockPath,
      retries: { retries: INDEX_LOCK_RETRIES.value, factor: 1.2, minTimeout: 5, maxTimeout: 200, randomize: true },
      stale: INDEX_LOCK_STALE_MS.value,
      realpath: false,
      onCompromised: (err) => {
        lost = err;
      },
    })
    .catch((err: unknown) => {
      throw lockError(err, dir, lockPath);
    });
  const held = () => {
    if (lost) {
      throw new BkError('UNAVAILABLE', `lost the index lock of ${dir} (${lost.message}); nothing more was written, try again`, {
        cause: lost,
        reason: 'lock-lost',
      });
    }
  };
  try {
    const out = await fn(held);
    held();
    return out;
  } finally {
    // A lost lock is no longer ours to release (release() would refuse).
    if (!lost) await release();
  }
}

/** Adds or replaces the entry for `tag`, as BuildKit's ociindex.Put does (one entry per tag). */
export function putTag(idx: ImageIndex, desc: Descriptor, tag: string): ImageIndex {
  const entry: Descriptor = {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    annotations: { ...(desc.annotations ?? {}), [ANNOTATION_REF_NAME]: tag },
  };
  // Replaces the first entry of the tag in place and drops any other: an
  // index.json written by hand or by another tool may name one tag twice, and
  // a stale duplicate would keep naming the old manifest (for prune, for a
  // reader that takes the last match).
  const at = idx.manifests.findIndex((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag);
  const manifests = idx.manifests.filter((m, i) => i === at || m.annotations?.[ANNOTATION_REF_NAME] !== tag);
  if (at >= 0) manifests[manifests.indexOf(idx.manifests[at]!)] = entry;
  else manifests.push(entry);
  return { ...idx, schemaVersion: idx.schemaVersion || 2, manifests };
}

export async function updateIndex(dir: string, update: (idx: ImageIndex) => ImageIndex | Promise<ImageIndex>): Promise<void> {
  await withIndexLock(dir, async (held) => {
    const next = await update(await readIndex(dir));
    held();
    await writeFileAtomic(path.join(dir, INDEX_FILE), encodeIndex(next)).catch((err: unknown) => {
      throw fsError(err, `${dir}/${INDEX_FILE}`);
    });
  });
}
