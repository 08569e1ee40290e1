// A seeded xorshift32 generator, shared by the property tests
// (test/cache/random-graph.ts) and the graph benchmark, so both draw the same
// graphs from the same seed. Integer-only, so no precision loss.
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
