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
  const keys = new Float64Array(count);
  if (count === 0) return keys;
  const first = str(0);
  let shared = first.length;
  for (let i = 1; i < count && shared > 0; i++) {
    const s = str(i);
    let k = 0;
    while (k < shared && k < s.length && s.charCodeAt(k) === first.charCodeAt(k)) k++;
    shared = k;
  }
  // The largest code unit in the window, for the base; the window is as many units as the base allows.
  let max = 0;
  for (let i = 0; i < count; i++) {
    const s = str(i);
    const end = Math.min(s.length, shared + 7);
    for (let k = shared; k < end; k++) if (s.charCodeAt(k) > max) max = s.charCodeAt(k);
  }
  // A missing code unit counts as 0 and a present one as 1 + its value (so a shorter string comes first, as in
  // JS): digits 0 .. max + 1, base max + 2, and `units` digits stay below 2^53, where doubles are exact.
  const base = max + 2;
  const units = Math.max(1, Math.min(7, Math.floor(53 / Math.log2(base))));
  for (let i = 0; i < count; i++) {
    const s = str(i);
    let key = 0;
    for (let k = shared; k < shared + units; k++) key = key * base + (k < s.length ? s.charCodeAt(k) + 1 : 0);
    keys[i] = key;
  }
  return keys;
}
