// Sorting many records or layers by digest compares strings spread over the
// heap: at tens of thousands, most comparisons miss the CPU's caches. These
// keys let a comparator decide almost every comparison from a typed array.

/**
 * A number per string that orders strings as JavaScript compares them (by
 * UTF-16 code units) on the code units after the prefix all of them share: if
 * keys[i] < keys[j] then strs[i] < strs[j]; equal keys leave the order to a
 * full comparison. As many code units as fit a double exactly go into a key,
 * in the base the strings' largest code unit needs: 7 for hex digests after
 * "sha256:", so equal keys among 20 000 random digests are rare (three units,
 * as a fixed base of 65 537 allows, left buckets of about five, each decided
 * by comparing strings).
 */
export function prefixKeys(count: number, str: (i: number) => string): Float64Array {
  if (count === 0) return new Float64Array(0);
  const len = new Int32Array(count);
  // HEAD code units of each string from unit `from` on, read once into one array: the passes below read that, in
  // order, rather than every string three times (at 20 000 digests each read of a string was a cache miss).
  const head = new Uint16Array(count * HEAD);
  copyUnits(head, len, count, str, 0);
  let from = 0;
  let shared = Math.min(len[0]!, HEAD);
  for (let i = 1; i < count && shared > 0; i++) {
    let k = 0;
    while (k < shared && k < len[i]! && head[i * HEAD + k] === head[k]) k++;
    shared = k;
  }
  // The window (up to UNITS units after the shared prefix) lies past the copied units: strings that share more
  // than HEAD - UNITS (rare). Find how much they share, and copy the window instead. Every string is at least
  // `shared` long, so each row holds every unit of the window its string has.
  if (shared + UNITS > HEAD) {
    if (shared === HEAD) shared = sharedPrefix(count, str);
    from = shared;
    copyUnits(head, len, count, str, from);
  }
  // The largest code unit in the window, for the base; the window is as many units as the base allows.
  let max = 0;
  for (let i = 0; i < count; i++) {
    const row = i * HEAD - from;
    const end = Math.min(len[i]!, shared + UNITS);
    for (let k = shared; k < end; k++) if (head[row + k]! > max) max = head[row + k]!;
  }
  // A missing code unit counts as 0 and a present one as 1 + its value (so a shorter string comes first, as in
  // JS): digits 0 .. max + 1, base max + 2, and `units` digits stay below 2^53, where doubles are exact.
  const base = max + 2;
  const units = Math.max(1, Math.min(UNITS, Math.floor(53 / Math.log2(base))));
  const keys = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const row = i * HEAD - from;
    let key = 0;
    for (let k = shared; k < shared + units; k++) key = key * base + (k < len[i]! ? head[row + k]! + 1 : 0);
    keys[i] = key;
  }
  return keys;
}

/** Code units copied per string: "sha256:" and the 7 after it, with room for a longer shared prefix. */
const HEAD = 16;
/** The most units a key holds (hex digits: base 104 as charCode + 2, 7 digits under 2^53). */
const UNITS = 7;

/** Each string's length, and HEAD of its code units from unit `from` on (fewer where it ends sooner). */
function copyUnits(head: Uint16Array, len: Int32Array, count: number, str: (i: number) => string, from: number): void {
  for (let i = 0; i < count; i++) {
    const s = str(i);
    len[i] = s.length;
    const n = Math.min(s.length - from, HEAD);
    for (let k = 0; k < n; k++) head[i * HEAD + k] = s.charCodeAt(from + k);
  }
}

/** The length of the prefix all the strings share, read from the strings. */
function sharedPrefix(count: number, str: (i: number) => string): number {
  const first = str(0);
  let shared = first.length;
  for (let i = 1; i < count && shared > 0; i++) {
    const s = str(i);
    let k = 0;
    while (k < shared && k < s.length && s.charCodeAt(k) === first.charCodeAt(k)) k++;
    shared = k;
  }
  return shared;
}
