import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../../src/cache/lifecycle/cache.js';
import { repairCache, verifyCache, verifyManifest } from '../../../src/cache/lifecycle/verify.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { copyCache } from '../../../src/cache/operations.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { BkError } from '../../../src/errors.js';
import { readmeSummaries } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { brokenConfigs, fixtureCopy, rawLocalCache } from './helpers.js';

const spec = (dir: string) => parseCacheSpec(`type=local,src=${dir}`);
const blobFile = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));

describe('verify', () => {
  for (const [name, s] of readmeSummaries()) {
    it(`${name}: every blob present and intact (deep)`, async () => {
      const v = await verifyCache(spec(fixtureCopy(name)), {}, { deep: true });
      await v.opened?.close();
      expect(v.report).toMatchObject({ ok: true, manifest: s.manifest, missing: [], corrupt: [], records: s.records, brokenRecords: 0 });
      // Config (if any) and every distinct layer the manifest names.
      expect(v.report.blobs).toBeGreaterThanOrEqual(s.layers > 0 ? 1 : 0);
    });
  }

  it('finds a missing layer and counts the records whose chains named it', async () => {
    const dir = fixtureCopy('registry-index-oci-max');
    const opened = await openCache(spec(dir));
    // The base layer: every result chain starts with it.
    const base = opened.graph.nodes.find((n) => n.result)!.result!.layers[0]!.digest;
    const top = opened.graph.nodes.find((n) => n.result && n.result.layers.length === 5)!.result!.layers[4]!.digest;
    await opened.close();
    rmSync(blobFile(dir, top));
    let v = await verifyCache(spec(dir));
    expect(v.report).toMatchObject({ ok: false, missing: [top], corrupt: [], records: 11 });
    expect(v.report.brokenRecords).toBe(1);
    await v.opened?.close();
    rmSync(blobFile(dir, base));
    v = await verifyCache(spec(dir));
    expect(v.report.missing.sort()).toEqual([base, top].sort());
    expect(v.report.brokenRecords).toBe(6);
    await v.opened?.close();
  });

  it('on a local layout a corrupt blob counts as missing without --deep, and as corrupt with it', async () => {
    // The local store proves a blob's size and digest before it says it holds it (store/local/blob-file.ts),
    // so to exists() a blob whose bytes are wrong is one the layout does not hold; --deep reads it and tells.
    const dir = fixtureCopy('registry-imagemanifest-max');
    const opened = await openCache(spec(dir));
    const victim = [...opened.loaded.parts[0]!.provider.keys()][0]!;
    await opened.close();
    appendFileSync(blobFile(dir, victim), 'x');
    for (const deep of [false, true]) {
      const v = await verifyCache(spec(dir), {}, { deep });
      await v.opened?.close();
      expect(v.report).toMatchObject(deep ? { ok: false, missing: [], corrupt: [victim] } : { ok: false, missing: [victim], corrupt: [] });
      expect(v.report.brokenRecords).toBeGreaterThan(0);
    }
  });

  it('a missing cache config leaves nothing to judge: broken, and not repairable', async () => {
    const dir = fixtureCopy('registry-imagemanifest-max');
    const config = readmeSummaries().get('registry-imagemanifest-max')!.config!;
    rmSync(blobFile(dir, config));
    const v = await verifyCache(spec(dir));
    expect(v.report).toMatchObject({ ok: false, missing: [config], records: 0, brokenRecords: 0 });
    expect(v.opened).toBeUndefined();
    await expect(repairCache(v, parseCacheSpec(`type=local,dest=${tempDir('bkcache-rep-')}`))).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('a store whose check says the config exists but whose read fails (a lying HEAD): the config is missing or corrupt, not an error', async () => {
    for (const fault of ['missing', 'corrupt'] as const) {
      const dir = fixtureCopy('registry-imagemanifest-max');
      const { config, manifest } = readmeSummaries().get('registry-imagemanifest-max')!;
      if (fault === 'missing') rmSync(blobFile(dir, config!));
      else writeFileSync(blobFile(dir, config!), readFileSync(blobFile(dir, config!)).reverse());
      const local = new LocalStore(dir);
      // What a registry does whose HEAD answers 200 from a stale index while GET finds nothing (or other bytes).
      const lying = Object.assign(Object.create(local) as LocalStore, { exists: async () => true });
      const desc = await local.resolve(manifest);
      const v = await verifyManifest(lying, desc);
      expect(v.report, fault).toMatchObject({ ok: false, [fault]: [config], records: 0 });
      expect(v.opened).toBeUndefined();
    }
  });

  it('a corrupt manifest is reported, not thrown', async () => {
    const dir = fixtureCopy('registry-index-oci-max');
    const m = readmeSummaries().get('registry-index-oci-max')!.manifest;
    const file = blobFile(dir, m);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('"schemaVersion":2', '"schemaVersion":3'));
    const v = await verifyCache(spec(dir));
    expect(v.report).toMatchObject({ ok: false, corrupt: [m] });
  });

  it('a config that is no graph (looping records, a key that is no digest, a layer loop) is a typed error, not a crash', async () => {
    const { layers: l, configs } = brokenConfigs();
    for (const [config, reason] of configs) {
      const spec = await rawLocalCache(config, l);
      // Before: the graph was built in a then() whose throw nobody awaited while the blobs were checked: an unhandled rejection.
      await expect(verifyCache(parseCacheSpec(spec)), reason).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason });
      await expect(verifyCache(parseCacheSpec(spec), {}, { deep: true }), reason).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason });
    }
  });

  it('a cache that does not exist is NOT_FOUND, not "broken"', async () => {
    await expect(verifyCache(parseCacheSpec(`type=local,src=${tempDir('bkcache-none-')},tag=nope`))).rejects.toBeInstanceOf(BkError);
  });
});

describe('repair', () => {
  it('drops exactly the results that lost a blob; the repaired cache verifies and equals copy of the kept part', async () => {
    const dir = fixtureCopy('registry-index-oci-max');
    const before = await openCache(spec(dir));
    const top = before.graph.nodes.find((n) => n.result && n.result.layers.length === 5)!;
    const lost = top.result!.layers[4]!.digest;
    await before.close();
    rmSync(blobFile(dir, lost));

    const v = await verifyCache(spec(dir));
    const out = tempDir('bkcache-rep-');
    const r = await repairCache(v, parseCacheSpec(`type=local,dest=${out}`));
    await v.opened!.close();
    expect(r.dropped).toEqual([top.digest]);
    const after = await verifyCache(parseCacheSpec(`type=local,src=${out}`), {}, { deep: true });
    expect(after.report).toMatchObject({ ok: true, brokenRecords: 0 });
    expect(after.opened!.graph.nodes.filter((n) => n.result).length).toBe(5);
    await after.opened!.close();
    // A copy of the repaired cache reproduces it byte for byte: it is what copy writes for those records.
    const again = tempDir('bkcache-rep-');
    const c = await copyCache([parseCacheSpec(`type=local,src=${out}`)], parseCacheSpec(`type=local,dest=${again}`));
    expect(c.manifest!.digest).toBe(r.export.manifest!.digest);
  });

  it('repairs in place: the tag moves to the repaired manifest, and nothing it names is missing', async () => {
    const dir = fixtureCopy('registry-imagemanifest-max');
    const before = await openCache(spec(dir));
    const lost = before.graph.nodes.find((n) => n.result && n.result.layers.length === 5)!.result!.layers[4]!.digest;
    await before.close();
    rmSync(blobFile(dir, lost));
    const v = await verifyCache(spec(dir));
    const tag = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')).manifests[0].annotations['org.opencontainers.image.ref.name'];
    const r = await repairCache(v, parseCacheSpec(`type=local,dest=${dir},tag=${tag}`));
    await v.opened!.close();
    const again = await verifyCache(parseCacheSpec(`type=local,src=${dir},tag=${tag}`));
    await again.opened?.close();
    expect(again.report).toMatchObject({ ok: true, manifest: r.export.manifest!.digest });
  });
});
