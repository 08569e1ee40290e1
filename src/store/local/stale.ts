// Temp files a crash leaves behind. Every write to a layout goes to a temp
// file first (blobs/<alg>/<hex>.<owner>.ingest, .index.json.<owner>.tmp)
// and is renamed into place, so a SIGKILL leaves only temp files, never a
// half-written blob. Their names carry the writing process (owner.ts), so
// prune and daemon start can remove exactly those whose writer is gone,
// while a live export's files in the same directory stay.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { OWNED_RE, ownedName, ownerAlive } from './owner.js';

/** Files of writers from before owner names (no pid in the name) count as stale after this long untouched. */
const UNKNOWN_OWNER_STALE_MS = 60 * 60 * 1000;

/** Temp file for a blob: same directory as the blob, so the final rename is atomic. */
export function ingestPath(blobFile: string): string {
  return `${blobFile}.${ownedName()}.ingest`;
}

/** Temp file for a layout file (index.json, oci-layout), hidden and in the same directory. */
export function tempPath(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${ownedName()}.tmp`);
}

const INGEST_RE = /^[0-9a-f]+\.(.+)\.ingest$/;
const TEMP_RE = /^\.(?:index\.json|oci-layout)\.(.+)\.tmp$/;

/** The owner part of a temp file name, or undefined when `name` is not one of ours. */
function ownerPart(name: string, inBlobs: boolean): string | undefined {
  return (inBlobs ? INGEST_RE : TEMP_RE).exec(name)?.[1];
}

async function isStale(file: string, owner: string): Promise<boolean> {
  const m = OWNED_RE.exec(owner);
  if (m) return !ownerAlive(Number(m[1]), m[2]);
  const st = await fs.lstat(file).catch(() => undefined);
  return !!st && Date.now() - st.mtimeMs > UNKNOWN_OWNER_STALE_MS;
}

export interface SweepResult {
  /** Paths of stale temp files (removed unless dryRun). */
  files: string[];
  bytes: number;
}

/** Finds (and unless `dryRun` removes) the stale temp files of the layout at `dir`. */
export async function sweepLayout(dir: string, opts: { dryRun?: boolean } = {}): Promise<SweepResult> {
  const res: SweepResult = { files: [], bytes: 0 };
  const visit = async (where: string, inBlobs: boolean) => {
    for (const name of await fs.readdir(where).catch(() => [] as string[])) {
      const owner = ownerPart(name, inBlobs);
      if (owner === undefined) continue;
      const file = path.join(where, name);
      if (!(await isStale(file, owner))) continue;
      const st = await fs.lstat(file).catch(() => undefined);
      if (!st?.isFile()) continue;
      res.files.push(file);
      res.bytes += st.size;
      if (!opts.dryRun) await fs.rm(file, { force: true });
    }
  };
  await visit(dir, false);
  const blobs = path.join(dir, 'blobs');
  for (const alg of await fs.readdir(blobs, { withFileTypes: true }).catch(() => [])) {
    if (alg.isDirectory()) await visit(path.join(blobs, alg.name), true);
  }
  return res;
}

/** Bounds for the walk at daemon start: the root holds one layout per tenant cache, a few levels deep. */
const MAX_DEPTH = 12;
const MAX_DIRS = 100_000;

/**
 * Removes stale temp files from every layout under `root` (the daemon's
 * store root, whose caches nest: root/cache/a/app). Called once at daemon
 * start. Symlinks are not followed; blobs/ is not descended into beyond
 * its algorithm directories; the walk is bounded in depth and directories.
 * Never throws: a root it cannot read is reported as nothing removed.
 */
export async function removeStaleTempFiles(root: string): Promise<SweepResult> {
  const total: SweepResult = { files: [], bytes: 0 };
  let dirs = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH || ++dirs > MAX_DIRS) return;
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    if (entries.some((e) => e.name === 'blobs' && e.isDirectory())) {
      const r = await sweepLayout(dir).catch(() => ({ files: [], bytes: 0 }));
      for (const f of r.files) total.files.push(f);
      total.bytes += r.bytes;
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name === 'blobs' || e.name.startsWith('.')) continue;
      await walk(path.join(dir, e.name), depth + 1);
    }
  };
  await walk(path.resolve(root), 0);
  return total;
}
