// What a bench reads of another process from /proc (Linux): the CPU it has
// used and its peak resident set.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** User + system CPU seconds of a process so far, all threads (fields 14 and 15 of /proc/PID/stat, in clock ticks). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (in parentheses) may hold spaces: fields are counted after it.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return (Number(f[11]) + Number(f[12])) / clockTicks;
}

/** Peak resident set of a live process in MiB (VmHWM of /proc/PID/status). */
export function peakRssMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Math.round(Number(m[1]) / 1024);
}
