// Leases: an export records every blob it relies on in a file of its own
// under .bkcache/leases/, and prune keeps what the leases of live writers
// claim (see prune.ts). The directory is inside a layout anyone may have
// edited, so prune treats it as hostile input:
// - .bkcache and .bkcache/leases must be real directories. A symlink there
//   would send prune's removal of dead leases to whatever directory it
//   names, outside the layout; such a layout is refused, nothing deleted.
// - Only files named as a lease (owner.ts) are leases. Anything else there
//   (notes, directories) is neither read nor removed.
// - A live lease is read O_NOFOLLOW | O_NONBLOCK with a size cap (place.ts):
//   a FIFO there would block prune forever while it holds the index lock,
//   and a symlink to /dev/zero would fill memory. We write leases as regular
//   files only, so anything else named like a live lease claims nothing;
//   one too large to read is refused (what it claims is unknown).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BkError, invalidArgument, isNotFound } from '../../errors.js';
import { OWNED_RE, ownedName, ownerAlive } from './owner.js';
import { makeDirectory, readRegular } from './place.js';

const META = '.bkcache';
const LEASES = path.join(META, 'leases');
/** A lease lists one export's digests (72 bytes each): 64 MiB is ~900 000 blobs. */
const MAX_LEASE_BYTES = 64 << 20;

export interface Lease {
  /** Protects a blob from prune until release(). */
  add(digest: string): Promise<void>;
  release(): Promise<void>;
}

export async function createLease(dir: string): Promise<Lease> {
  const leaseDir = path.join(dir, LEASES);
  // One level at a time, each checked: .bkcache must not be a symlink out of the layout.
  await makeDirectory(path.dirname(leaseDir));
  await makeDirectory(leaseDir);
  const file = path.join(leaseDir, `${ownedName()}.lease`);
  await fs.writeFile(file, '', { flag: 'wx' });
  return {
    add: (digest) => fs.appendFile(file, digest + '\n'),
    release: () => fs.rm(file, { force: true }),
  };
}

/** For a lease file name: whether its writer still runs; undefined when the name is no lease's (owner.ts; older names carry a pid only). */
function leaseAlive(name: string): boolean | undefined {
  if (!name.endsWith('.lease')) return undefined;
  const base = name.slice(0, -'.lease'.length);
  const m = OWNED_RE.exec(base);
  if (m) return ownerAlive(Number(m[1]), m[2]);
  const old = /^(\d+)-[0-9a-f]{12}$/.exec(base);
  return old ? ownerAlive(Number(old[1])) : undefined;
}

function refuseLeases(dir: string, why: string): BkError {
  return invalidArgument(`the leases of ${dir} cannot be trusted: ${why}; nothing was deleted`, { reason: 'not-a-layout' });
}

/** True when `dir`/`rel` is a real directory, false when absent; refuses anything else (a symlink above all). */
async function realDirectory(dir: string, rel: string): Promise<boolean> {
  const st = await fs.lstat(path.join(dir, rel)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw refuseLeases(dir, `cannot look at ${rel} (${err.code ?? 'error'})`);
  });
  if (!st) return false;
  if (!st.isDirectory()) throw refuseLeases(dir, `${rel} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`);
  return true;
}

/**
 * Digests claimed by the leases of live writers in the layout at `dir`.
 * Unless `dryRun`, the lease files of dead writers are removed. Throws
 * INVALID_ARGUMENT (reason not-a-layout) when the leases directory is not
 * one (see the top of this file).
 */
export async function leasedDigests(dir: string, dryRun: boolean): Promise<Set<string>> {
  const out = new Set<string>();
  if (!(await realDirectory(dir, META)) || !(await realDirectory(dir, LEASES))) return out;
  const leaseDir = path.join(dir, LEASES);
  const names = await fs.readdir(leaseDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw refuseLeases(dir, `cannot list ${LEASES} (${err.code ?? 'error'})`);
  });
  for (const f of names) {
    const alive = leaseAlive(f);
    if (alive === undefined) continue;
    const file = path.join(leaseDir, f);
    if (!alive) {
      const st = await fs.lstat(file).catch(() => undefined);
      if (!dryRun && st?.isFile()) await fs.rm(file, { force: true });
      continue;
    }
    let text: string;
    try {
      text = (await readRegular(file, `lease ${f} in ${dir}`, MAX_LEASE_BYTES)).toString('utf8');
    } catch (err) {
      // Gone (released meanwhile), or not a file we write: it claims nothing.
      if (isNotFound(err) || (err instanceof BkError && err.reason === 'bad-place')) continue;
      throw refuseLeases(dir, (err as Error).message);
    }
    for (const line of text.split('\n')) if (line) out.add(line);
  }
  return out;
}
