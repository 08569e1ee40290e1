import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LocalStore } from '../../../src/store/local/index.js';
import { blobOf, describeStoreConformance, manifestOf, uniqueBytes } from '../conformance.js';
import { tempDir } from '../../tmp.js';

const tmp = () => tempDir('bkcache-local-');

describeStoreConformance('local', async () => {
  const dir = tmp();
  return { store: new LocalStore(dir, { create: true }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

async function pushImage(store: LocalStore) {
  const layer = uniqueBytes(1000);
  const config = uniqueBytes(100);
  const ld = blobOf(layer);
  const cd = blobOf(config, 'application/vnd.buildkit.cacheconfig.v0');
  await store.push(ld, layer);
  await store.push(cd, config);
  const m = manifestOf(cd, [ld]);
  await store.push(m.desc, m.bytes);
  return { manifest: m.desc, layer: ld, config: cd };
}

describe('local layout specifics', () => {
  it('writes oci-layout and a compact index.json with ref.name annotations', async () => {
    const dir = tmp();
    const store = new LocalStore(dir, { create: true });
    const { manifest } = await pushImage(store);
    await store.tag(manifest, 'latest');
    expect(readFileSync(path.join(dir, 'oci-layout'), 'utf8')).toBe('{"imageLayoutVersion":"1.0.0"}');
    expect(readFileSync(path.join(dir, 'index.json'), 'utf8')).toBe(
      `{"schemaVersion":2,"manifests":[{"mediaType":"${manifest.mediaType}","digest":"${manifest.digest}","size":${manifest.size},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}`,
    );
    // No temp files are left behind.
    expect(readdirSync(dir).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('refuses to tag a manifest whose blobs are missing', async () => {
    const store = new LocalStore(tmp(), { create: true });
    const { manifest, layer } = await pushImage(store);
    await store.delete(layer);
    await expect(store.tag(manifest, 'broken')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(store.resolve('broken')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('re-tagging a tag that index.json names twice leaves one entry, in the first place', async () => {
    const dir = tmp();
    const store = new LocalStore(dir, { create: true });
    const a = await pushImage(store);
    const b = await pushImage(store);
    const c = await pushImage(store);
    await store.tag(a.manifest, 'x');
    await store.tag(b.manifest, 'other');
    // A hand-edited index.json: tag x twice.
    const file = path.join(dir, 'index.json');
    const idx = JSON.parse(readFileSync(file, 'utf8')) as { manifests: unknown[] };
    idx.manifests.push({ ...(idx.manifests[0] as object) });
    writeFileSync(file, JSON.stringify(idx));
    await store.tag(c.manifest, 'x');
    expect((await store.tags()).map((t) => [t.tag, t.desc.digest])).toEqual([
      ['x', c.manifest.digest],
      ['other', b.manifest.digest],
    ]);
  });

  // Uses the built module (npm test builds first), as a real second process would.
  it('8 concurrent writers in separate processes lose no index.json entry', async () => {
    const dir = tmp();
    const store = new LocalStore(dir, { create: true });
    const images = [];
    for (let i = 0; i < 8; i++) images.push(await pushImage(store));
    const script = `
      import { LocalStore } from ${JSON.stringify(path.resolve('dist/src/store/local/index.js'))};
      const [dir, tag, mt, digest, size] = process.argv.slice(1);
      await new LocalStore(dir, { create: true }).tag({ mediaType: mt, digest, size: Number(size) }, tag);
    `;
    const run = promisify(execFile);
    await Promise.all(
      images.map((im, i) =>
        run(process.execPath, ['--input-type=module', '-e', script, dir, `t${i}`, im.manifest.mediaType, im.manifest.digest, String(im.manifest.size)]),
      ),
    );
    const tags = (await store.tags()).map((t) => t.tag).sort();
    expect(tags).toEqual(['t0', 't1', 't2', 't3', 't4', 't5', 't6', 't7']);
  });

  it('8 concurrent in-process writers lose no entry, and re-tagging replaces in place', async () => {
    const store = new LocalStore(tmp(), { create: true });
    const images = await Promise.all(Array.from({ length: 8 }, () => pushImage(store)));
    await Promise.all(images.map((im, i) => store.tag(im.manifest, `t${i}`)));
    expect((await store.tags()).map((t) => t.tag).sort()).toEqual(['t0', 't1', 't2', 't3', 't4', 't5', 't6', 't7']);
    const before = (await store.tags()).map((t) => t.tag);
    await store.tag(images[7]!.manifest, 't0');
    const tags = await store.tags();
    expect(tags.map((t) => t.tag)).toEqual(before);
    expect(tags.find((t) => t.tag === 't0')).toMatchObject({ desc: { digest: images[7]!.manifest.digest } });
    expect(tags).toHaveLength(8);
  });
});

describe('prune', () => {
  it('keeps what index.json reaches and deletes the rest', async () => {
    const store = new LocalStore(tmp(), { create: true });
    const kept = await pushImage(store);
    await store.tag(kept.manifest, 'keep');
    const orphan = await pushImage(store);
    const res = await store.prune();
    expect(res).toMatchObject({ kept: 3, deleted: 3 });
    for (const d of [kept.manifest, kept.config, kept.layer]) expect(await store.exists(d)).toBe(true);
    for (const d of [orphan.manifest, orphan.config, orphan.layer]) expect(await store.exists(d)).toBe(false);
  });

  it('never deletes blobs of an export still in progress', async () => {
    const store = new LocalStore(tmp(), { create: true });
    const lease = await store.lease();
    const inFlight = await pushImage(store);
    for (const d of [inFlight.layer, inFlight.config, inFlight.manifest]) await lease.add(d.digest);
    expect((await store.prune()).deleted).toBe(0);
    await store.tag(inFlight.manifest, 'done');
    await lease.release();
    expect((await store.prune()).deleted).toBe(0);
    expect(await store.exists(inFlight.layer)).toBe(true);
  });
});
