// Progress display like buildctl's --progress: "tty" redraws a live bar per
// blob (bytes and rate), "plain" prints a line per step, "json" prints one
// JSON object per event. All of it goes to stderr; results go to stdout.
import type { ProgressEvent } from '../cache/transfer.js';
import { humanBytes } from './format.js';
import { UsageError } from './usage-error.js';

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

interface BlobState {
  digest: string;
  size: number;
  sent: number;
  status: string;
  started: number;
  ended?: number;
}

const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

/** One line of the live display; pure, so it is tested without a terminal. */
export function renderBlobLine(b: BlobState, now: number, width = 80): string {
  const secs = Math.max(((b.ended ?? now) - b.started) / 1000, 0.001);
  const rate = b.sent > 0 ? `${humanBytes(Math.round(b.sent / secs))}/s` : '';
  const done = b.status === 'uploaded' || b.status === 'exists' || b.status === 'mounted';
  const frac = b.size > 0 ? Math.min(1, (done ? b.size : b.sent) / b.size) : done ? 1 : 0;
  const barWidth = Math.max(10, Math.min(30, width - 62));
  const filled = Math.round(frac * barWidth);
  const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (frac < 1 ? '>' : '=') : ''}${' '.repeat(barWidth - filled)}]`;
  const label = b.status === 'exists' ? 'already there' : b.status;
  const amount = `${humanBytes(done ? b.size : b.sent)}/${humanBytes(b.size)}`;
  return `${short(b.digest)} ${bar} ${amount.padEnd(21)} ${rate.padEnd(12)} ${label}`.slice(0, width);
}

export class Progress {
  private readonly blobs = new Map<string, BlobState>();
  private readonly extra: string[] = [];
  private drawn = 0;
  private timer?: NodeJS.Timeout;
  readonly mode: Exclude<ProgressMode, 'auto'>;

  constructor(
    mode: ProgressMode,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.mode = mode === 'auto' ? (out.isTTY ? 'tty' : 'plain') : mode;
    if (this.mode === 'tty') this.timer = setInterval(() => this.draw(), 100);
  }

  readonly onEvent = (e: ProgressEvent): void => {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') {
      this.out.write(JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n');
      return;
    }
    if (e.type !== 'blob') {
      const line = e.type === 'tag' ? `tagged ${e.tag} -> ${e.digest}` : `${e.type} ${e.digest} ${e.status === 'exists' ? 'already there' : e.status}`;
      if (this.mode === 'plain') this.out.write(line + '\n');
      else this.extra.push(line);
      return;
    }
    let b = this.blobs.get(e.digest);
    if (!b) this.blobs.set(e.digest, (b = { digest: e.digest, size: e.size, sent: 0, status: e.status, started: Date.now() }));
    const changed = b.status !== e.status;
    b.status = e.status;
    if (e.sent !== undefined) b.sent = e.sent;
    if (e.status === 'uploaded' || e.status === 'exists' || e.status === 'mounted') b.ended = Date.now();
    if (this.mode === 'plain' && changed && e.status !== 'checking') {
      const secs = ((b.ended ?? Date.now()) - b.started) / 1000;
      const tail = e.status === 'uploaded' ? ` ${humanBytes(b.size)} in ${secs.toFixed(1)}s` : e.status === 'uploading' ? ` ${humanBytes(b.size)}` : '';
      this.out.write(`blob ${e.digest} ${e.status === 'exists' ? 'already there' : e.status}${tail}\n`);
    }
  };

  private draw(): void {
    const width = this.out.columns ?? 100;
    const lines = [...[...this.blobs.values()].map((b) => renderBlobLine(b, Date.now(), width)), ...this.extra];
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    this.drawn = lines.length;
    this.out.write(s);
  }

  /** Final redraw; stops the timer. */
  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.mode === 'tty') this.draw();
  }
}

export function parseProgressMode(v: string | undefined): ProgressMode {
  const m = v ?? 'auto';
  if (!['auto', 'tty', 'plain', 'json', 'quiet'].includes(m)) throw new UsageError(`unknown --progress ${m} (auto, tty, plain, json, quiet)`);
  return m as ProgressMode;
}
