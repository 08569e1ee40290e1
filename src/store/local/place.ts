// Where a local store may read and write: a directory on a real file system,
// reached without surprises. Three faults shaped this file:
// - Node's recursive mkdir never returns on a path under /proc (mkdir there
//   says ENOENT for a parent that stat says exists, and mkdirp retries
//   forever on a libuv thread). So directories are made here one level at a
//   time, each step checked with lstat: a bounded number of system calls.
// - Pseudo file systems (proc, sysfs, cgroup, ...) look like directories
//   but are not storage; they are refused by their statfs type before
//   anything is created.
// - A FIFO or device where a file should be blocks a thread on open or
//   read forever. Files are opened with O_NOFOLLOW | O_NONBLOCK and must be
//   regular, so neither a symlink nor a special file is ever followed.
import { constants, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { asBkError, BkError, failedPrecondition, invalidArgument, notFound, resourceExhausted } from '../../errors.js';

// statfs f_type magic numbers of Linux pseudo file systems (linux/magic.h).
const PSEUDO_FS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x62656570: 'configfs',
  0x65735543: 'fusectl',
  0x6165676c: 'pstore',
  0xde5e81e4: 'efivarfs',
  0xf97cff8c: 'selinuxfs',
  0x42494e4d: 'binfmt_misc',
  0x19800202: 'mqueue',
  0x6e736673: 'nsfs',
};

/** A place that cannot hold a cache: the caller named it, so INVALID_ARGUMENT. */
export function badPlace(message: string, cause?: unknown): BkError {
  return invalidArgument(message, { reason: 'bad-place', cause });
}

/**
 * Maps a file system error met while writing `what` to a typed error: the
 * disk's refusals are the caller's problem to fix (permissions, a read-only
 * mount, a full disk), not an INTERNAL fault of the store.
 */
export function fsError(err: unknown, what: string): BkError {
  if (err instanceof BkError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return failedPrecondition(`cannot write ${what} (${code})`, { cause: err, reason: 'not-writable' });
    case 'ENOSPC':
    case 'EDQUOT':
      return resourceExhausted(`no space left to write ${what} (${code})`, { cause: err, reason: 'no-space' });
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ELOOP':
      return badPlace(`cannot write ${what} (${code})`, err);
    default:
      return asBkError(err);
  }
}

async function lstatOf(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // ENOTDIR: a parent is a file; the caller reports that place.
    if (code === 'ENOTDIR') throw badPlace(`${p} is not under a directory`, err);
    throw badPlace(`cannot look at ${p} (${code ?? 'error'})`, err);
  }
}

/** Refuses a directory on a pseudo file system (Linux; elsewhere statfs types differ). */
async function checkFileSystem(dir: string, shown: string): Promise<void> {
  if (process.platform !== 'linux') return;
  const type = (await fs.statfs(dir).catch(() => undefined))?.type;
  const name = type === undefined ? undefined : PSEUDO_FS[type >>> 0];
  if (name) throw badPlace(`${shown} is on a ${name} file system, not a place for a cache`);
}

/**
 * Checks that `dir` is (or, with `create`, can be made) a directory on a
 * real file system, and makes its missing levels. The existing part may
 * pass through symlinks the operator set up (/var/run -> /run); levels
 * made here are checked not to have been swapped for a symlink.
 */
export async function checkDirectory(dir: string, opts: { create?: boolean } = {}): Promise<void> {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  let st = await lstatOf(cur);
  while (!st) {
    const parent = path.dirname(cur);
    if (parent === cur) throw badPlace(`${dir} has no existing parent directory`);
    missing.unshift(path.basename(cur));
    cur = parent;
    st = await lstatOf(cur);
  }
  if (st.isSymbolicLink()) st = await fs.stat(cur).catch(() => undefined);
  if (!st?.isDirectory()) {
    if (missing.length === 0 && !opts.create) throw notFound(`${dir} is not a directory`);
    throw badPlace(missing.length ? `${cur} is not a directory, so ${dir} cannot be made` : `${dir} is not a directory`);
  }
  await checkFileSystem(cur, missing.length ? dir : cur);
  if (missing.length && !opts.create) throw notFound(`${dir} is not a directory`);
  for (const name of missing) {
    cur = path.join(cur, name);
    await makeDirectory(cur);
  }
}

/** mkdir of one level (no recursion), then proof that a directory, not a symlink, is there. */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { mode: 0o755 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw badPlace(`cannot create ${dir} (${code})`, err);
    if (code !== 'EEXIST') throw fsError(err, dir);
  }
  const st = await lstatOf(dir);
  if (!st?.isDirectory()) throw badPlace(`${dir} is not a directory`);
}

/** Opening flags for reading a file that must be regular: never follow a symlink, never block on a FIFO. */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/**
 * Opens a regular file for reading. NOT_FOUND when absent; a symlink, FIFO,
 * device or directory in its place is refused the same way as bad content
 * would be, with `what` naming it.
 */
export async function openRegular(file: string, what: string): Promise<{ fh: fs.FileHandle; size: number }> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, READ_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(`${what} not found`, { cause: err });
    if (code === 'ELOOP') throw badPlace(`${what} is a symlink; a cache holds regular files only`, err);
    throw badPlace(`cannot open ${what} (${code ?? 'error'})`, err);
  }
  const st = await fh.stat().catch(async (err: unknown) => {
    await fh.close();
    throw err;
  });
  if (!st.isFile()) {
    await fh.close();
    throw badPlace(`${what} is not a regular file`);
  }
  return { fh, size: st.size };
}

/** Reads a whole regular file of at most `limit` bytes, reading no more than limit + 1 whatever it claims. */
export async function readRegular(file: string, what: string, limit: number): Promise<Buffer> {
  const { fh, size } = await openRegular(file, what);
  try {
    if (size > limit) throw resourceExhausted(`${what} is ${size} bytes, over the ${limit}-byte limit`, { reason: 'too-large' });
    const buf = Buffer.alloc(Math.min(limit + 1, Math.max(size, 1 << 16)));
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > limit) throw resourceExhausted(`${what} is over the ${limit}-byte limit`, { reason: 'too-large' });
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}
