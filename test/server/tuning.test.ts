import v8 from 'node:v8';
import { describe, expect, it, vi } from 'vitest';
import { HEAP_GROWING_PERCENT, tuneHeap } from '../../src/server/tuning.js';

describe('tuneHeap', () => {
  it('sets V8 heap growing percent unless told otherwise', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    try {
      expect(tuneHeap({}, [])).toBe(HEAP_GROWING_PERCENT);
      expect(set).toHaveBeenLastCalledWith(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
      expect(tuneHeap({ BKCACHE_HEAP_GROWING_PERCENT: '150' }, [])).toBe(150);
      expect(set).toHaveBeenLastCalledWith('--heap-growing-percent=150');
      set.mockClear();
      // 0 leaves V8's default; a flag given to node wins over ours.
      expect(tuneHeap({ BKCACHE_HEAP_GROWING_PERCENT: '0' }, [])).toBe(0);
      expect(tuneHeap({}, ['--heap-growing-percent=50'])).toBe(0);
      expect(tuneHeap({ NODE_OPTIONS: '--heap_growing_percent=50' }, [])).toBe(0);
      expect(set).not.toHaveBeenCalled();
    } finally {
      set.mockRestore();
    }
  });

  it('refuses a value that is not a percent', () => {
    expect(() => tuneHeap({ BKCACHE_HEAP_GROWING_PERCENT: 'lots' }, [])).toThrow(/BKCACHE_HEAP_GROWING_PERCENT/);
    expect(() => tuneHeap({ BKCACHE_HEAP_GROWING_PERCENT: '-1' }, [])).toThrow(/BKCACHE_HEAP_GROWING_PERCENT/);
  });
});
