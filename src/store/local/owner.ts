// Who owns a temp file or a lease: the writing process, named by pid and
// start time. A pid alone is not enough: a daemon in a container runs as
// pid 1 after every restart, so the files of the instance that was killed
// would look alive forever. On Linux the start time (field 22 of
// /proc/<pid>/stat, clock ticks since boot) tells the two apart; elsewhere
// it is "0" and liveness falls back to the pid.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

function startTime(pid: number): string | undefined {
  if (process.platform !== 'linux') return '0';
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/** This process: "<pid>-<start time>". */
export const OWNER = `${process.pid}-${startTime(process.pid) ?? '0'}`;

/** A fresh name part owned by this process: "<pid>-<start>-<random>". */
export function ownedName(): string {
  return `${OWNER}-${randomBytes(6).toString('hex')}`;
}

/** Matches the owner part of names made by ownedName(). */
export const OWNED_RE = /^(\d+)-(\d+)-[0-9a-f]{12}$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process that made a name with `pid` and `start` still runs.
 * A start of "0" (a system without /proc) or an unreadable start time
 * counts as alive when the pid is: keeping a file is always the safe side.
 */
export function ownerAlive(pid: number, start?: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (`${pid}-${start}` === OWNER) return true;
  if (!pidAlive(pid)) return false;
  if (start === undefined || start === '0') return true;
  const now = startTime(pid);
  return now === undefined || now === '0' || now === start;
}
