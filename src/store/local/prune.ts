// Garbage collection of a local layout: keep the blobs reachable from
// index.json, plus those an export still in progress has claimed. BuildKit's
// own reset would delete the latter; an export here first records every blob
// it relies on in a lease file, and prune honours leases whose owner process
// is alive. Prune deletes under the index lock, and tagging re-checks that the
// manifest's blobs exist under the same lock, so a tag never names a blob a
// concurrent prune removed.
//
// Prune deletes only what it can prove is garbage. It refuses (INVALID_ARGUMENT,
// nothing deleted) a directory that is not an OCI image layout it fully
// understands: no oci-layout or index.json (buildkitd's content store), an
// empty or malformed index.json, an entry without a media type. And it
// refuses when any entry cannot be walked to its last blob (a manifest that
// is missing, corrupt, too large, or of a type whose children it cannot
// know): what such an entry names is unknown, so nothing is provably garbage.
// https://github.com/opencontainers/image-spec/blob/main/image-layout.md
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invalidArgument, isNotFound, type BkError } from '../../errors.js';
import { ANNOTATION_REF_NAME, decodeDescriptor, type Descriptor } from '../../oci/descriptor.js';
import { algorithmOf, digestBytes, isDigest } from '../../oci/digest.js';
import { goArray, goField, isObject, parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, decodeManifest, detectManifestMediaType } from '../../oci/manifest.js';
import { isIndexMediaType, isManifestMediaType, layerCompression, MT } from '../../oci/media-types.js';
import { MAX_METADATA_BYTES } from '../content.js';
import { forgetIntact } from './blob-file.js';
import { contentStorePath, INDEX_FILE, OCI_LAYOUT_FILE, withIndexLock } from './layout.js';
import { leasedDigests } from './lease.js';
import { fsError, readRegular } from './place.js';
import { sweepLayout } from './stale.js';

export { createLease, leasedDigests, type Lease } from './lease.js';

// Media types that name no other blob. A manifest's config and layers are
// leaves whatever their type; in an index (BuildKit's index-shaped cache
// lists its layers and config there) a type must be known to be a leaf.
const LEAF_TYPES = new Set<string>([
  MT.buildkitCacheConfig,
  MT.ociConfig,
  MT.dockerConfig,
  'application/vnd.oci.empty.v1+json',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

function isLeafType(mt: string): boolean {
  return LEAF_TYPES.has(mt) || layerCompression(mt) !== undefined;
}

/** A walk that cannot finish: strict callers (prune) refuse, lenient ones (tag) skip. */
class CannotWalk extends Error {}

async function readManifestDoc(dir: string, d: Descriptor, strict: boolean): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readRegular(contentStorePath(dir, d.digest), `manifest ${d.digest}`, MAX_METADATA_BYTES);
  } catch (err) {
    if (!strict) return undefined;
    throw new CannotWalk(isNotFound(err) ? `manifest ${d.digest} is missing` : (err as Error).message);
  }
  if (strict && (bytes.length !== d.size || digestBytes(bytes, algorithmOf(d.digest)) !== d.digest)) {
    throw new CannotWalk(`manifest ${d.digest} does not match its digest or size`);
  }
  try {
    return parseJsonBytes(bytes, d.digest);
  } catch (err) {
    if (strict) throw new CannotWalk((err as Error).message);
    return undefined;
  }
}

/**
 * What one manifest document names: the manifests of an index, and the
 * blobs (config, layers, a subject) that are leaves of the walk. Throws
 * INVALID_ARGUMENT for a document that is not a manifest.
 */
export function namedBy(doc: unknown): { manifests: Descriptor[]; leaves: Descriptor[] } {
  if (isIndexMediaType(detectManifestMediaType(doc))) {
    const idx = decodeIndex(doc);
    return { manifests: idx.manifests, leaves: idx.subject ? [idx.subject] : [] };
  }
  const m = decodeManifest(doc);
  return { manifests: [], leaves: [m.config, ...m.layers, ...(m.subject ? [m.subject] : [])] };
}

/**
 * Everything a manifest in the layout at `dir` names, recursively, by
 * digest: children of indexes, config, layers and subject of manifests.
 * Lenient (tagging): missing or unreadable manifests name nothing. Strict
 * (prune): they, and index children of unknown type, throw CannotWalk.
 * Iterative and loop-free by construction (a seen set), so no input reaches
 * a recursion limit.
 */
export async function reachable(dir: string, roots: Descriptor[], strict = false): Promise<Map<string, Descriptor>> {
  const seen = new Map<string, Descriptor>();
  // Digests read as manifests. Kept apart from `seen`: one digest can be named
  // as a leaf (a layer type) in one place and as a manifest in another, and
  // whichever came first must not stop the manifest's children being walked.
  const walked = new Set<string>();
  const queue: { d: Descriptor; leafOk: boolean }[] = roots.map((d) => ({ d, leafOk: false }));
  const done = (d: Descriptor) => walked.has(d.digest) || (seen.has(d.digest) && !isManifestMediaType(d.mediaType));
  const push = (list: Descriptor[], leafOk: boolean) => {
    for (const d of list) if (d.digest && !done(d)) queue.push({ d, leafOk });
  };
  while (queue.length) {
    const { d, leafOk } = queue.pop()!;
    if (done(d)) continue;
    if (!seen.has(d.digest)) seen.set(d.digest, d);
    if (!isManifestMediaType(d.mediaType)) {
      if (strict && !leafOk && !isLeafType(d.mediaType)) {
        throw new CannotWalk(`${d.digest} has media type ${JSON.stringify(d.mediaType)}, which prune cannot tell names no other blob`);
      }
      continue;
    }
    walked.add(d.digest);
    const doc = await readManifestDoc(dir, d, strict);
    if (doc === undefined) continue;
    try {
      const named = namedBy(doc);
      push(named.manifests, false);
      push(named.leaves, true);
    } catch (err) {
      if (strict) throw new CannotWalk(`manifest ${d.digest}: ${(err as Error).message}`);
    }
  }
  return seen;
}

function refuse(dir: string, why: string, cause?: unknown): BkError {
  return invalidArgument(`refusing to prune ${dir}: ${why}; nothing was deleted`, { reason: 'not-a-layout', cause });
}

/**
 * Reads oci-layout and index.json of `dir` as prune requires them: both
 * present, regular and well-formed, every index entry a descriptor with a
 * media type. Returns the entries.
 */
export async function readLayoutStrict(dir: string): Promise<Descriptor[]> {
  const read = async (name: string) => {
    try {
      return await readRegular(path.join(dir, name), name, MAX_METADATA_BYTES);
    } catch (err) {
      throw refuse(dir, isNotFound(err) ? `it has no ${name}, so it is not an OCI image layout` : (err as Error).message, err);
    }
  };
  const parse = (name: string, bytes: Buffer) => {
    if (bytes.length === 0) throw refuse(dir, `${name} is empty`);
    try {
      return parseJsonBytes(bytes, name);
    } catch (err) {
      throw refuse(dir, (err as Error).message, err);
    }
  };
  const layout = parse(OCI_LAYOUT_FILE, await read(OCI_LAYOUT_FILE));
  if (!isObject(layout) || layout.imageLayoutVersion !== '1.0.0') {
    throw refuse(dir, `${OCI_LAYOUT_FILE} does not say imageLayoutVersion 1.0.0`);
  }
  const index = parse(INDEX_FILE, await read(INDEX_FILE));
  if (!isObject(index) || goField(index, 'schemaVersion') !== 2) throw refuse(dir, `${INDEX_FILE} is not an OCI index with schemaVersion 2`);
  const raw = goField(index, 'manifests');
  // Our own encoder (like Go's) writes an empty list as null.
  if (raw !== null && !Array.isArray(raw)) throw refuse(dir, `${INDEX_FILE} has no manifests list`);
  const entries: Descriptor[] = [];
  let i = 0;
  for (const m of goArray(raw, 'manifests')) {
    let d: Descriptor;
    try {
      d = decodeDescriptor(m, `${INDEX_FILE} manifests[${i}]`);
    } catch (err) {
      throw refuse(dir, (err as Error).message, err);
    }
    if (!d.mediaType) throw refuse(dir, `${INDEX_FILE} manifests[${i}] (${d.digest}) has no mediaType`);
    entries.push(d);
    i++;
  }
  const blobs = await fs.lstat(path.join(dir, 'blobs')).catch(() => undefined);
  if (!blobs?.isDirectory()) throw refuse(dir, 'blobs is not a directory');
  return entries;
}

/** Walks every entry strictly; the first that cannot be walked refuses the whole prune. */
async function keepSet(dir: string, entries: Descriptor[]): Promise<Map<string, Descriptor>> {
  const keep = new Map<string, Descriptor>();
  // Entries naming one manifest alike (many tags on one cache) are walked
  // once: each walk reads and hashes the manifest, and an index.json of tens
  // of thousands of such entries took prune minutes, most of it holding the
  // index lock every writer waits for. Size and type are part of the key:
  // an entry with another size must still fail on its own.
  const walked = new Set<string>();
  for (const [i, e] of entries.entries()) {
    const key = `${e.digest} ${e.size} ${e.mediaType}`;
    if (walked.has(key)) continue;
    walked.add(key);
    try {
      for (const [k, v] of await reachable(dir, [e], true)) keep.set(k, v);
    } catch (err) {
      if (!(err instanceof CannotWalk)) throw err;
      const tag = e.annotations?.[ANNOTATION_REF_NAME];
      throw refuse(dir, `${INDEX_FILE} entry ${i}${tag === undefined ? '' : ` (tag ${JSON.stringify(tag)})`} cannot be walked: ${err.message}`);
    }
  }
  return keep;
}

export interface PruneOptions {
  /** Report what would be deleted; delete nothing (and take no lock: it works on read-only mounts). */
  dryRun?: boolean;
}

export interface PruneResult {
  dryRun: boolean;
  kept: number;
  deleted: number;
  deletedBytes: number;
  /** The blobs deleted (or that a dry run would delete). */
  blobs: { digest: string; size: number }[];
  /** Temp files of dead writers removed (or that would be). */
  tempFiles: number;
  tempBytes: number;
}

export async function pruneLayout(dir: string, opts: PruneOptions = {}): Promise<PruneResult> {
  const dryRun = opts.dryRun === true;
  // Validate before the lock: the lock is a write, and a refused directory gets none.
  await keepSet(dir, await readLayoutStrict(dir));
  await leasedDigests(dir, true);
  const run = async (held: () => void = () => undefined): Promise<PruneResult> => {
    // Again under the lock: index.json may have changed meanwhile.
    const keep = new Set((await keepSet(dir, await readLayoutStrict(dir))).keys());
    for (const d of await leasedDigests(dir, dryRun)) keep.add(d);
    const res: PruneResult = { dryRun, kept: 0, deleted: 0, deletedBytes: 0, blobs: [], tempFiles: 0, tempBytes: 0 };
    const blobsDir = path.join(dir, 'blobs');
    for (const alg of await fs.readdir(blobsDir, { withFileTypes: true })) {
      if (!alg.isDirectory()) continue;
      for (const name of await fs.readdir(path.join(blobsDir, alg.name))) {
        const digest = `${alg.name}:${name}`;
        // Only files named exactly like a blob are blobs; temp files and
        // anything else someone put here are not prune's to delete.
        if (!isDigest(digest)) continue;
        if (keep.has(digest)) {
          res.kept++;
          continue;
        }
        const file = path.join(blobsDir, alg.name, name);
        const st = await fs.lstat(file).catch(() => undefined);
        if (!st?.isFile()) continue;
        if (!dryRun) {
          held();
          forgetIntact(file);
          await fs.rm(file, { force: true });
        }
        res.deleted++;
        res.deletedBytes += st.size;
        res.blobs.push({ digest, size: st.size });
      }
    }
    const swept = await sweepLayout(dir, { dryRun });
    res.tempFiles = swept.files.length;
    res.tempBytes = swept.bytes;
    return res;
  };
  try {
    return await (dryRun ? run() : withIndexLock(dir, (held) => run(held)));
  } catch (err) {
    // The disk's refusals typed (a read-only layout: FAILED_PRECONDITION), never INTERNAL.
    throw fsError(err, `blobs of ${dir}`);
  }
}
