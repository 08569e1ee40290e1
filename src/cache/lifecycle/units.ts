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
    throw invalidArgument(`invalid duration ${JSON.stringify(text)} (examples: 30d, 12h, 1h30m, 90s)`, { reason: 'invalid-duration' });
  }
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
    throw invalidArgument(`invalid size ${JSON.stringify(text)} (examples: 20GiB, 500MB, 1.5G, 1048576)`, { reason: 'invalid-size' });
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw invalidArgument(`size ${JSON.stringify(text)} is too large`, { reason: 'invalid-size' });
  return n;
}
