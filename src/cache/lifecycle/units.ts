// Durations and sizes as users type them on the command line: `30d`, `12h`,
// `1h30m`, `90s` (Go's time.ParseDuration units plus d and w, which retention
// settings need), and `20GiB`, `500MB`, `1.5G`, `1024` (bytes; decimal SI
// units and binary IEC units, with k/M/G/T alone read as binary like
// BuildKit's `keepBytes` parsing via go-units RAMInBytes).
import { invalidArgument } from '../../errors.js';

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** The input as an error message quotes it: JSON-escaped, and cut short (a flag value may be megabytes). */
const quoted = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);

/**
 * The longest duration taken: about 285 000 years, past which a cutoff
 * (now minus the duration) would leave JavaScript's Date range and the
 * milliseconds would no longer be exact. A larger value is a typo, not a wish.
 */
const MAX_DURATION_MS = Number.MAX_SAFE_INTEGER;

/** Milliseconds of a duration like `30d`, `1h30m`, `45s`. */
export function parseDuration(text: string): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (!s || pos !== s.length || !Number.isFinite(total)) {
    throw invalidArgument(`invalid duration ${quoted(text)} (examples: 30d, 12h, 1h30m, 90s)`, { reason: 'invalid-duration' });
  }
  if (total > MAX_DURATION_MS) throw invalidArgument(`duration ${quoted(text)} is too long`, { reason: 'invalid-duration' });
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Bytes of a size like `20GiB`, `500MB`, `1.5G`, `1024`. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw invalidArgument(`invalid size ${quoted(text)} (examples: 20GiB, 500MB, 1.5G, 1048576)`, { reason: 'invalid-size' });
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw invalidArgument(`size ${quoted(text)} is too large`, { reason: 'invalid-size' });
  return n;
}
