import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCache } from '../../src/cache/import.js';
import { BkError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes } from '../../src/oci/digest.js';
import { MT } from '../../src/oci/media-types.js';
import { LocalStore } from '../../src/store/local/index.js';
import { BK } from '../fixtures.js';
import { topDescriptor } from './helpers.js';
import { tempDir } from '../tmp.js';

async function storeWith(...docs: (string | Buffer)[]): Promise<{ store: LocalStore; descs: Descriptor[] }> {
  const store = new LocalStore(tempDir('bkcache-import-'), { create: true });
  const descs: Descriptor[] = [];
  for (const doc of docs) {
    const bytes = Buffer.isBuffer(doc) ? doc : Buffer.from(doc);
    const d = { mediaType: '', digest: digestBytes(bytes), size: bytes.length };
    await store.push(d, bytes);
    descs.push(d);
  }
  return { store, descs };
}

async function loadErr(store: LocalStore, d: Descriptor): Promise<BkError> {
  try {
    await loadCache(store, d);
  } catch (err) {
    expect(err).toBeInstanceOf(BkError);
    return err as BkError;
  }
  throw new Error('expected an error');
}

describe('import inference errors', () => {
  it('malformed JSON is INVALID_ARGUMENT', async () => {
    const { store, descs } = await storeWith('{"manifests": [');
    expect((await loadErr(store, descs[0]!)).code).toBe('INVALID_ARGUMENT');
  });
  it('a document with both manifests and layers is ambiguous', async () => {
    const { store, descs } = await storeWith('{"manifests":[],"layers":[]}');
    expect((await loadErr(store, descs[0]!)).reason).toBe('ambiguous-manifest');
  });
  it('an image without inline cache is not a cache', async () => {
    const cfg = '{"rootfs":{"type":"layers","diff_ids":[]}}';
    const { store, descs } = await storeWith(cfg);
    const mf = JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: { ...descs[0], mediaType: MT.ociConfig }, layers: [] });
    const { descs: m } = await storeWith(mf).then(async (r) => {
      await store.push(r.descs[0]!, Buffer.from(mf));
      return r;
    });
    const err = await loadErr(store, m[0]!);
    expect(err.reason).toBe('uninferrable');
  });
  it('refuses manifests and configs over 16 MiB without reading them whole', async () => {
    const big = Buffer.alloc((16 << 20) + 10, 0x20);
    const { store, descs } = await storeWith(big);
    expect((await loadErr(store, descs[0]!)).code).toBe('RESOURCE_EXHAUSTED');
  });
  it('a manifest whose bytes do not match its digest is DATA_LOSS', async () => {
    const { store, descs } = await storeWith('{"manifests":[]}');
    // Corrupt the stored blob in place: same size, different bytes.
    writeFileSync(store.blobPath(descs[0]!.digest), '{"manifests":{}}');
    const err = await loadErr(store, descs[0]!);
    expect(err.code).toBe('DATA_LOSS');
    expect(err.message).toMatch(/digest mismatch/);
  });
  it('a missing manifest is NOT_FOUND', async () => {
    const { store } = await storeWith();
    expect((await loadErr(store, { mediaType: MT.ociIndex, digest: digestBytes('nope'), size: 4 })).code).toBe('NOT_FOUND');
  });
});

describe('inline cache', () => {
  it('skips, with a warning, an image whose config does not match its manifest', async () => {
    const dir = path.join(BK, 'inline-image');
    const src = new LocalStore(dir);
    const top = topDescriptor(dir);
    const mf = JSON.parse(readFileSync(src.blobPath(top.digest), 'utf8'));
    const cfg = JSON.parse(readFileSync(src.blobPath(mf.config.digest), 'utf8'));
    const good = Buffer.from(readFileSync(src.blobPath(mf.config.digest)));
    cfg.rootfs.diff_ids.pop();
    const bad = Buffer.from(JSON.stringify(cfg));
    const { store, descs } = await storeWith(good, bad);
    const goodMf = JSON.stringify({ ...mf, config: { ...mf.config } });
    const badMf = JSON.stringify({ ...mf, config: { ...mf.config, digest: descs[1]!.digest, size: descs[1]!.size } });
    const { descs: m } = await storeWith(goodMf, badMf);
    for (const [i, doc] of [goodMf, badMf].entries()) await store.push(m[i]!, Buffer.from(doc));
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: m.map((d) => ({ mediaType: MT.dockerManifest, digest: d.digest, size: d.size })),
    });
    const idxBytes = Buffer.from(index);
    const idxDesc = { mediaType: MT.ociIndex, digest: digestBytes(idxBytes), size: idxBytes.length };
    await store.push(idxDesc, idxBytes);
    const loaded = await loadCache(store, idxDesc);
    expect(loaded.kind).toBe('inline');
    expect(loaded.recordCount).toBe(11);
    expect(loaded.layerCount).toBe(5);
    expect(loaded.warnings.join()).toMatch(/mismatching manifest and config; skipped/);
  });
});
