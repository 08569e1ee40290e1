// Garbage collection of a local layout: keep the blobs reachable from
// index.json, plus those an export still in progress has claimed. BuildKit's
// own reset would delete the latter; an export here first records every blob
// it relies on in a lease file, and prune honours leases whose owner process
// is alive. Prune deletes under the index lock, and tagging re-checks that the
// manifest's blobs exist under the same lock, so a tag never names a blob a
// concurrent prune removed.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isIndexMediaType, isManifestMediaType } from '../../oci/media-types.js';
import { decodeIndex, decodeManifest, detectManifestMediaType } from '../../oci/manifest.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { contentStorePath, readIndex, withIndexLock } from './layout.js';

const LEASES = path.join('.bkcache', 'leases');

export interface Lease {
  /** Protects a blob from prune until release(). */
  add(digest: string): Promise<void>;
  release(): Promise<void>;
}

export async function createLease(dir: string): Promise<Lease> {
  const leaseDir = path.join(dir, LEASES);
  await fs.mkdir(leaseDir, { recursive: true });
  const file = path.join(leaseDir, `${process.pid}-${randomBytes(6).toString('hex')}.lease`);
  await fs.writeFile(file, '');
  return {
    add: (digest) => fs.appendFile(file, digest + '\n'),
    release: () => fs.rm(file, { force: true }),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Digests claimed by live leases; leases of dead processes are removed. */
async function leasedDigests(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  const leaseDir = path.join(dir, LEASES);
  const files = await fs.readdir(leaseDir).catch(() => [] as string[]);
  for (const f of files) {
    const pid = Number(f.split('-')[0]);
    const file = path.join(leaseDir, f);
    if (!Number.isInteger(pid) || !alive(pid)) {
      await fs.rm(file, { force: true });
      continue;
    }
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line) out.add(line);
  }
  return out;
}

/**
 * Everything a manifest in the layout at `dir` names, recursively: children
 * of indexes, config and layers of manifests. Missing or unreadable
 * manifests name nothing.
 */
export async function reachable(dir: string, roots: Descriptor[]): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length) {
    const d = queue.pop()!;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (!isManifestMediaType(d.mediaType)) continue;
    const bytes = await fs.readFile(contentStorePath(dir, d.digest)).catch(() => undefined);
    if (!bytes) continue;
    let doc: unknown;
    try {
      doc = parseJsonBytes(bytes, d.digest);
    } catch {
      continue;
    }
    const mt = detectManifestMediaType(doc);
    if (isIndexMediaType(mt)) queue.push(...decodeIndex(doc).manifests);
    else {
      const m = decodeManifest(doc);
      if (m.config.digest) queue.push(m.config);
      queue.push(...m.layers);
    }
  }
  return seen;
}

export interface PruneResult {
  kept: number;
  deleted: number;
  deletedBytes: number;
}

export async function pruneLayout(dir: string): Promise<PruneResult> {
  return withIndexLock(dir, async () => {
    const idx = await readIndex(dir);
    const keep = await reachable(dir, idx.manifests);
    for (const d of await leasedDigests(dir)) keep.add(d);
    const res: PruneResult = { kept: 0, deleted: 0, deletedBytes: 0 };
    const blobsDir = path.join(dir, 'blobs');
    for (const alg of await fs.readdir(blobsDir).catch(() => [] as string[])) {
      for (const name of await fs.readdir(path.join(blobsDir, alg))) {
        // Temp files of uploads in flight end in ".ingest"; they are not blobs yet.
        if (name.includes('.')) continue;
        const digest = `${alg}:${name}`;
        if (keep.has(digest)) {
          res.kept++;
          continue;
        }
        const file = path.join(blobsDir, alg, name);
        const st = await fs.stat(file).catch(() => undefined);
        await fs.rm(file, { force: true });
        res.deleted++;
        res.deletedBytes += st?.size ?? 0;
      }
    }
    return res;
  });
}
