// Sorting many records or layers by digest compares strings spread over the
// heap: at tens of thousands, most comparisons miss the CPU's caches. These
// keys let a comparator decide most comparisons from a typed array instead.

/**
 * A number per string that orders strings as JavaScript compares them (by
 * UTF-16 code units) on the three code units after the prefix all of them
 * share: if keys[i] < keys[j] then strs[i] < strs[j]; equal keys leave the
 * order to a full comparison. (Digests share "sha256:", and three hex digits
 * after it split 20 000 records into buckets of about five.)
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
  for (let i = 0; i < count; i++) {
    const s = str(i);
    // A missing code unit counts as 0 and a present one as 1 + its value, so a shorter string comes first, as in JS.
    const c0 = shared < s.length ? s.charCodeAt(shared) + 1 : 0;
    const c1 = shared + 1 < s.length ? s.charCodeAt(shared + 1) + 1 : 0;
    const c2 = shared + 2 < s.length ? s.charCodeAt(shared + 2) + 1 : 0;
    keys[i] = (c0 * 65537 + c1) * 65537 + c2;
  }
  return keys;
}
