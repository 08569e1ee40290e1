import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { exportFrom, exportMarshalled, openCache } from '../../../src/cache/lifecycle/cache.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { trimOpened } from '../../../src/cache/lifecycle/trim.js';
import { verifyCache } from '../../../src/cache/lifecycle/verify.js';
import { CacheGraph } from '../../../src/cache/graph.js';
import { copyCache } from '../../../src/cache/operations.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { tempDir } from '../../tmp.js';
import { chainGraph, fixtureCopy, MemoryBlobs, writeLocal } from './helpers.js';

const DAY = 86_400_000;

/** Three builds of three steps each, on days 1, 2 and 3 of 2026, sharing nothing; every layer 1000 bytes. */
async function threeBuilds(order: string[] = ['a', 'b', 'c']): Promise<string> {
  const graph = new CacheGraph();
  const blobs = new MemoryBlobs();
  const day = { a: 1, b: 2, c: 3 } as Record<string, number>;
  for (const p of order) chainGraph(3, { graph, blobs, prefix: p, start: new Date(Date.UTC(2026, 0, day[p]!)), size: () => 1000 });
  return writeLocal(graph, blobs);
}

async function trimTo(src: string, opts: Parameters<typeof trimOpened>[1], out = tempDir('bkcache-trim-')) {
  const opened = await openCache(parseCacheSpec(src));
  try {
    const t = trimOpened(opened, opts);
    const res = await exportMarshalled(opened, t.marshalled, parseCacheSpec(`type=local,dest=${out}`));
    return { ...t, res, out: `type=local,src=${out}` };
  } finally {
    await opened.close();
  }
}

describe('trim', () => {
  it('--max-size drops the oldest results (and their records) until the blobs fit', async () => {
    const src = await threeBuilds();
    const size = (await trimTo(src, {})).report.before.bytes;
    const t = await trimTo(src, { maxSize: Math.floor((size * 2) / 3) });
    expect(t.report.before).toMatchObject({ records: 9, layers: 9 });
    expect(t.report.after).toMatchObject({ records: 6, layers: 6, bytes: Math.round((size * 2) / 3) });
    expect(t.report.droppedResults).toBe(3);
    expect(t.plan.dropped.map((n) => n.result!.createdAt)).toEqual(['2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', '2026-01-01T02:00:00Z']);
    const v = await verifyCache(parseCacheSpec(t.out), {}, { deep: true });
    await v.opened?.close();
    expect(v.report).toMatchObject({ ok: true, records: 6 });
  });

  it('--max-age keeps results created within the age', async () => {
    const src = await threeBuilds();
    const now = new Date(Date.UTC(2026, 0, 3, 12));
    // Cutoff Jan 2 12:00: builds a and b go, c stays.
    const t = await trimTo(src, { maxAge: DAY, now });
    expect(t.plan.dropped.length).toBe(6);
    expect(t.report.after.records).toBe(3);
    // Cutoff Jan 2 01:30.
    const t2 = await trimTo(src, { maxAge: DAY + 10.5 * 3_600_000, now });
    // The last step of build b (day 2 02:00) is now within the age; the steps it needs stay as records.
    expect(t2.report.droppedResults).toBe(5);
    expect(t2.report.after.records).toBe(3 + 3);
  });

  it('is deterministic and writes exactly what copy writes for the kept part', async () => {
    const a = await trimTo(await threeBuilds(['a', 'b', 'c']), { maxSize: 6000 });
    const b = await trimTo(await threeBuilds(['c', 'a', 'b']), { maxSize: 6000 });
    expect(a.res.manifest!.digest).toBe(b.res.manifest!.digest);
    const copied = await copyCache([parseCacheSpec(a.out)], parseCacheSpec(`type=local,dest=${tempDir('bkcache-trim-')}`));
    expect(copied.manifest!.digest).toBe(a.res.manifest!.digest);
    expect(copied.config!.digest).toBe(a.res.config!.digest);
  });

  it('trims a real BuildKit cache to a valid cache; with no limits hit it is a fixed point', async () => {
    const dir = fixtureCopy('registry-index-oci-max');
    const same = await trimTo(`type=local,src=${dir}`, { maxSize: 1e12 });
    expect(same.report.droppedResults).toBe(0);
    expect(same.report.after).toEqual(same.report.before);
    const half = await trimTo(`type=local,src=${dir}`, { maxSize: 2_500_000 });
    expect(half.report.after.bytes).toBeLessThanOrEqual(2_500_000);
    expect(half.report.droppedResults).toBeGreaterThan(0);
    const v = await verifyCache(parseCacheSpec(half.out), {}, { deep: true });
    await v.opened?.close();
    expect(v.report.ok).toBe(true);
  });

  it('drops everything when nothing fits, and then writes nothing', async () => {
    const t = await trimTo(await threeBuilds(), { maxSize: 10 });
    expect(t.report.after).toEqual({ records: 0, layers: 0, bytes: 0 });
    expect(t.res.manifest).toBeUndefined();
  });

  it('trim or repair of an inline cache back onto its image is refused before anything is written; another tag is fine', async () => {
    const dir = fixtureCopy('inline-image');
    const index = () => readFileSync(path.join(dir, 'index.json'), 'utf8');
    const before = index();
    const opened = await openCache(parseCacheSpec(`type=local,src=${dir},tag=app-inline`));
    try {
      const { marshalled, plan } = trimOpened(opened, { maxAge: 1000 * 86_400_000 });
      await expect(exportMarshalled(opened, marshalled, parseCacheSpec(`type=local,dest=${dir},tag=app-inline`))).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION',
        reason: 'would-replace-image',
      });
      await expect(exportFrom(opened, plan.graph, parseCacheSpec(`type=local,dest=${dir},tag=app-inline`))).rejects.toMatchObject({ reason: 'would-replace-image' });
      expect(index()).toBe(before);
      const res = await exportMarshalled(opened, marshalled, parseCacheSpec(`type=local,dest=${dir},tag=trimmed`));
      expect(res.manifest).toBeDefined();
    } finally {
      await opened.close();
    }
    const tags = Object.fromEntries((await new LocalStore(dir).tags()).map((t) => [t.tag, t.desc.digest]));
    expect(tags['app-inline']).toBe(JSON.parse(before).manifests[0].digest);
    expect(Object.keys(tags).sort()).toEqual(['app-inline', 'trimmed']);
  });
});

