import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { gcRepository, globMatcher } from '../../../src/cache/lifecycle/gc.js';
import { verifyCache } from '../../../src/cache/lifecycle/verify.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { chainGraph, sha, writeLocal } from './helpers.js';

const DAY = 86_400_000;
const NOW = new Date('2026-03-01T00:00:00Z');

/** A layout with caches tagged old-1 (Jan), old-2 (Jan, same manifest as keep-me), new (Feb 28), and an image with inline cache. */
async function layout(): Promise<string> {
  const dir = tempDir('bkcache-gc-');
  const jan = chainGraph(2, { prefix: 'jan', start: new Date('2026-01-01T00:00:00Z') });
  await writeLocal(jan.graph, jan.blobs, dir, 'old-1');
  const jan2 = chainGraph(2, { prefix: 'jan2', start: new Date('2026-01-02T00:00:00Z') });
  await writeLocal(jan2.graph, jan2.blobs, dir, 'old-2');
  await writeLocal(jan2.graph, jan2.blobs, dir, 'keep-me');
  const feb = chainGraph(2, { prefix: 'feb', start: new Date('2026-02-28T00:00:00Z') });
  await writeLocal(feb.graph, feb.blobs, dir, 'new');
  // An image (carrying inline cache) in the same layout: never gc's to delete.
  const img = path.join(BK, 'inline-image');
  cpSync(path.join(img, 'blobs'), path.join(dir, 'blobs'), { recursive: true });
  const entry = JSON.parse(readFileSync(path.join(img, 'index.json'), 'utf8')).manifests[0];
  const store = new LocalStore(dir);
  await store.tag({ mediaType: entry.mediaType, digest: entry.digest, size: entry.size }, 'image');
  return dir;
}

const blobCount = (dir: string) => readdirSync(path.join(dir, 'blobs', 'sha256')).length;

describe('gc of a local layout', () => {
  it('globs match whole tags with * and ?', () => {
    expect(globMatcher('main')('main')).toBe(true);
    expect(globMatcher('release-*')('release-1.2')).toBe(true);
    expect(globMatcher('release-*')('xrelease-1')).toBe(false);
    expect(globMatcher('v?')('v1')).toBe(true);
    expect(globMatcher('a.b')('axb')).toBe(false);
  });

  it('globs: regex metacharacters are literal, stars and ? match anything', () => {
    const cases: [string, string, boolean][] = [
      ['*', '', true],
      ['', '', true],
      ['', 'a', false],
      ['**', 'abc', true],
      ['a*', 'a', true],
      ['*a', 'ba', true],
      ['*a', 'ab', false],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'aXbY', false],
      ['*-*-*', 'x-y-z', true],
      ['*-*-*', 'x-y', false],
      ['?', '', false],
      ['??', 'ab', true],
      ['a?c', 'a\nc', true],
      ['(a|b)+', '(a|b)+', true],
      ['(a|b)+', 'a', false],
      ['[ab]', 'a', false],
      ['[ab]', '[ab]', true],
      ['^x$', '^x$', true],
      ['x\\*', 'x\\y', true],
      ['.*', 'abc', false],
      ['.*', '.abc', true],
    ];
    for (const [glob, tag, want] of cases) expect(globMatcher(glob)(tag), `${glob} ~ ${JSON.stringify(tag)}`).toBe(want);
  });

  it('globs: a backtracking shape against a long tag answers at once', () => {
    // As a RegExp (^a.*a.*…b$) this ran for hours: every split of the a's was tried.
    const glob = 'a*'.repeat(40) + 'b';
    expect(globMatcher(glob)('a'.repeat(128))).toBe(false);
    expect(globMatcher(glob)('a'.repeat(127) + 'b')).toBe(true);
    expect(globMatcher('*'.repeat(10_000) + 'x')('y'.repeat(10_000))).toBe(false);
  });

  it('never deletes a cache manifest a kept index lists, nor judges an entry listed twice twice', async () => {
    const dir = await layout();
    const store = new LocalStore(dir);
    const old = (await store.tags()).find((t) => t.tag === 'old-1')!.desc;
    // An index someone tagged (an image index, an artifact, a signature list) that lists old-1's cache manifest.
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [old] }));
    const index = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha(body.toString()), size: body.length };
    await store.push(index, body);
    await store.tag(index, 'pinned');
    // And old-1's entry twice in index.json.
    const file = path.join(dir, 'index.json');
    const idx = JSON.parse(readFileSync(file, 'utf8'));
    idx.manifests.push(idx.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === 'old-1'));
    writeFileSync(file, JSON.stringify(idx));

    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, now: NOW });
    expect(r.deleted.map((t) => t.tag)).toEqual(['keep-me', 'old-2']);
    expect(r.kept.filter((t) => t.tag === 'old-1')).toEqual([{ tag: 'old-1', digest: old.digest, newest: expect.any(String), reason: 'named-by-kept-index' }]);
    expect((await store.tags()).map((t) => t.tag).sort()).toEqual(['image', 'new', 'old-1', 'old-1', 'pinned']);
    expect((await verifyCache(parseCacheSpec(`type=local,src=${dir},tag=old-1`))).report.ok).toBe(true);
  });

  it('an index that lists images besides a cache config is an image, never deleted', async () => {
    const dir = await layout();
    const store = new LocalStore(dir);
    const tags = await store.tags();
    const old = tags.find((t) => t.tag === 'old-1')!.desc;
    const image = tags.find((t) => t.tag === 'image')!.desc;
    const doc = JSON.parse(readFileSync(store.blobPath(old.digest), 'utf8'));
    // old-1's cache config and layers, and the image's manifest, in one index.
    const children = doc.mediaType === 'application/vnd.oci.image.index.v1+json' ? doc.manifests : [doc.config, ...doc.layers];
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...children, image] });
    const hybrid = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha(body), size: Buffer.byteLength(body) };
    await store.push(hybrid, Buffer.from(body));
    await store.tag(hybrid, 'hybrid');
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, dryRun: true, now: NOW });
    expect(r.kept.find((t) => t.tag === 'hybrid')?.reason).toBe('not-a-cache');
    expect(r.deleted.map((t) => t.tag)).toEqual(['keep-me', 'old-1', 'old-2']);
  });

  it('one tag with two expired entries in index.json: both go, as reported', async () => {
    const dir = await layout();
    const file = path.join(dir, 'index.json');
    const idx = JSON.parse(readFileSync(file, 'utf8'));
    const ref = (m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'];
    // old-2's entry renamed old-1: the tag old-1 now has two entries, two different expired caches.
    for (const m of idx.manifests) if (ref(m) === 'old-2') m.annotations['org.opencontainers.image.ref.name'] = 'old-1';
    writeFileSync(file, JSON.stringify(idx));
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, now: NOW });
    expect(r.deleted.map((t) => t.tag)).toEqual(['keep-me', 'old-1', 'old-1']);
    expect((await new LocalStore(dir).tags()).map((t) => t.tag).sort()).toEqual(['image', 'new']);
  });

  it('dry run: says what would go, changes nothing', async () => {
    const dir = await layout();
    const before = readFileSync(path.join(dir, 'index.json'), 'utf8');
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, keep: ['keep-*'], dryRun: true, now: NOW });
    expect(r.deleted.map((t) => t.tag)).toEqual(['old-1']);
    expect(Object.fromEntries(r.kept.map((t) => [t.tag, t.reason]))).toEqual({
      image: 'not-a-cache',
      'keep-me': 'keep-glob',
      new: 'recent',
      'old-2': 'shares-manifest',
    });
    expect(readFileSync(path.join(dir, 'index.json'), 'utf8')).toBe(before);
  });

  it('deletes expired cache tags, prunes their blobs, and leaves every kept tag whole', async () => {
    const dir = await layout();
    const blobs = blobCount(dir);
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, keep: ['keep-*'], now: NOW });
    expect(r.deleted.map((t) => t.tag)).toEqual(['old-1']);
    const tags = (await new LocalStore(dir).tags()).map((t) => t.tag).sort();
    expect(tags).toEqual(['image', 'keep-me', 'new', 'old-2']);
    // old-1's two layers, its config and its manifest.
    expect(r.prune!.deleted).toBe(4);
    expect(blobCount(dir)).toBe(blobs - 4);
    for (const tag of ['keep-me', 'new', 'old-2']) {
      const v = await verifyCache(parseCacheSpec(`type=local,src=${dir},tag=${tag}`), {}, { deep: true });
      await v.opened?.close();
      expect(v.report.ok, tag).toBe(true);
    }
    const img = await verifyCache(parseCacheSpec(`type=local,src=${dir},tag=image`), {}, { deep: true });
    await img.opened?.close();
    expect(img.report.ok).toBe(true);
  });

  it('without --keep a manifest two expired tags name goes with both', async () => {
    const dir = await layout();
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 30 * DAY, now: NOW });
    expect(r.deleted.map((t) => t.tag)).toEqual(['keep-me', 'old-1', 'old-2']);
    expect((await new LocalStore(dir).tags()).map((t) => t.tag).sort()).toEqual(['image', 'new']);
  });

  it('refuses other store types', async () => {
    await expect(gcRepository(parseCacheSpec('type=gha,scope=x'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
