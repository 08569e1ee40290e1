// A manifest may name one digest twice with different sizes (a hand edit,
// another tool). The importer fetches with one of those descriptors (the last
// one, as BuildKit's map of layers keeps it), and a fetch with the wrong size
// fails. verify checked each digest once, with whichever descriptor came
// first: it said "ok" for a cache whose import then failed.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../../src/cache/lifecycle/cache.js';
import { dropLostResults, repairCache, verifyCache } from '../../../src/cache/lifecycle/verify.js';
import { copyCache } from '../../../src/cache/operations.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { digestBytes } from '../../../src/oci/digest.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { tempDir } from '../../tmp.js';
import { fixtureCopy } from './helpers.js';

const spec = (dir: string) => parseCacheSpec(`type=local,src=${dir}`);
const LAYER = 'sha256:0f08bb67934188154bdc9d2bc5eb9cb0797539efbd2a75700f66918839075f88';

/**
 * A copy of local-index-max (whose cache index lists LAYER twice, at its
 * real size) with the size of LAYER's `which` entry made wrong, and the
 * manifest rewritten and retagged.
 */
function withWrongSize(which: 'first' | 'last'): string {
  const dir = fixtureCopy('local-index-max');
  const indexFile = path.join(dir, 'index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8'));
  const entry = index.manifests[0];
  const doc = JSON.parse(readFileSync(path.join(dir, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8'));
  const named = doc.manifests.filter((m: { digest: string }) => m.digest === LAYER);
  expect(named).toHaveLength(2);
  named[which === 'first' ? 0 : 1].size += 1000;
  const bytes = Buffer.from(JSON.stringify(doc));
  entry.digest = digestBytes(bytes);
  entry.size = bytes.length;
  writeFileSync(path.join(dir, 'blobs', 'sha256', entry.digest.slice(7)), bytes);
  writeFileSync(indexFile, JSON.stringify(index));
  return dir;
}

describe('a digest named at two sizes', () => {
  it('the size the importer uses is wrong: verify reports it and the records using it, and repair drops just those', async () => {
    const dir = withWrongSize('last');
    // What an import does with it: fails.
    await expect(copyCache([spec(dir)], parseCacheSpec(`type=local,dest=${tempDir('bkcache-vs-')}`))).rejects.toMatchObject({ code: 'DATA_LOSS' });
    for (const deep of [false, true]) {
      const v = await verifyCache(spec(dir), {}, { deep });
      await v.opened?.close();
      expect(v.report.ok).toBe(false);
      expect([...v.report.missing, ...v.report.corrupt]).toEqual([LAYER]);
      expect(v.report.brokenRecords).toBeGreaterThan(0);
    }
    const v = await verifyCache(spec(dir));
    const repaired = await repairCache(v, parseCacheSpec(`type=local,dest=${dir}`));
    await v.opened?.close();
    expect(repaired.dropped).toHaveLength(v.report.brokenRecords);
    const again = await verifyCache(spec(dir), {}, { deep: true });
    await again.opened?.close();
    expect(again.report.ok).toBe(true);
    await copyCache([spec(dir)], parseCacheSpec(`type=local,dest=${tempDir('bkcache-vs-')}`));
  });

  it('only an unused entry has the wrong size: the cache is reported, no record is broken, and repair drops nothing', async () => {
    const dir = withWrongSize('first');
    const v = await verifyCache(spec(dir));
    expect(v.report).toMatchObject({ ok: false, missing: [LAYER], brokenRecords: 0 });
    const repaired = await repairCache(v, parseCacheSpec(`type=local,dest=${dir}`));
    await v.opened?.close();
    expect(repaired.dropped).toEqual([]);
    const again = await verifyCache(spec(dir), {}, { deep: true });
    await again.opened?.close();
    expect(again.report.ok).toBe(true);
  });

  it('the daemon\'s verify_blobs drops the results whose chains carry the wrong size', async () => {
    const dir = withWrongSize('last');
    const opened = await openCache(spec(dir));
    try {
      const store = new LocalStore(dir);
      const res = await dropLostResults(store, opened.loaded, opened.graph);
      expect(res.dropped.length).toBeGreaterThan(0);
      expect(res.dropped.length).toBe(res.report.brokenRecords);
      for (const n of res.graph.recordsWithResults()) {
        for (const l of n.result?.layers ?? []) if (l.digest === LAYER) expect(l.size).toBe(136);
      }
    } finally {
      await opened.close();
    }
  });
});
