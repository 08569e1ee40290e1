// Structured logs: one JSON object per line on stderr, one line per call.
// Fields are chosen by the caller from what is safe to print: specs (which
// never carry credentials), digests, counts, codes. Request bodies are never logged.
import type { LogLevel } from './config.js';

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, error: 2, off: 3 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(level: LogLevel = 'info', out: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (lvl: Exclude<LogLevel, 'off'>, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < RANK[level]) return;
    out(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
