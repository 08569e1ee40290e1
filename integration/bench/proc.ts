// What a bench reads of another process from /proc (Linux): the CPU it has
// used and its peak resident set.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;
const ticksPerSecond = () => (clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);

/** User + system CPU seconds of a process so far, all threads (fields 14 and 15 of /proc/PID/stat, in clock ticks). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (in parentheses) may hold spaces: fields are counted after it.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** Peak resident set of a live process in MiB (VmHWM of /proc/PID/status). */
export function peakRssMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Math.round(Number(m[1]) / 1024);
}

/** The machine's CPU time so far, from the first line of /proc/stat (clock ticks, all cores). */
export interface MachineTimes {
  total: number;
  /** Not idle, not waiting for I/O, not stolen: what some process on this VM ran. */
  busy: number;
  /** Time the hypervisor gave to other guests while this one wanted a core. */
  steal: number;
}

export function machineTimes(): MachineTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return { total: busy + idle! + iowait! + steal!, busy, steal: steal! };
}

/** Between two readings: steal as a share of all CPU time, and the CPU seconds all processes ran. */
export function machineDelta(a: MachineTimes, b: MachineTimes): { stealShare: number; busyS: number } {
  const total = b.total - a.total;
  return { stealShare: total > 0 ? (b.steal - a.steal) / total : 0, busyS: (b.busy - a.busy) / ticksPerSecond() };
}
