// The storage conformance suite: what every ContentStore backend must do,
// written against the interface alone (src/store/types.ts) so the local
// layout and the registry backend run the very same checks.
// Usage: describeStoreConformance('local', async () => ({ store, cleanup }))
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes } from '../../src/oci/digest.js';
import { MT } from '../../src/oci/media-types.js';
import type { ContentStore } from '../../src/store/types.js';

export interface StoreUnderTest {
  store: ContentStore;
  cleanup(): Promise<void>;
}

let counter = 0;

/** Unique random-looking bytes, so tests never collide on content. */
export function uniqueBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  const seed = createHash('sha256').update(`${process.pid}-${Date.now()}-${counter++}-${Math.random()}`).digest();
  for (let i = 0; i < n; i++) b[i] = seed[i % 32]! ^ (i * 131) ^ (i >> 8);
  seed.copy(b, 0, 0, Math.min(32, n));
  return b;
}

export function blobOf(bytes: Buffer, mediaType: string = MT.ociLayerGzip): Descriptor {
  return { mediaType, digest: digestBytes(bytes), size: bytes.length };
}

/** An OCI image manifest over a BuildKit cache config and one layer, as JSON bytes. */
export function manifestOf(config: Descriptor, layers: Descriptor[]): { desc: Descriptor; bytes: Buffer } {
  const doc = { schemaVersion: 2, mediaType: MT.ociManifest, config, layers };
  const bytes = Buffer.from(JSON.stringify(doc));
  return { desc: blobOf(bytes, MT.ociManifest), bytes };
}

/** Pushes a small cache config and a manifest naming it, tagged `tag`; returns the manifest. */
export async function seedTaggedManifest(store: ContentStore, tag: string): Promise<{ desc: Descriptor; bytes: Buffer }> {
  const cfg = uniqueBytes(100);
  const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
  await store.push(cfgDesc, cfg);
  const m = manifestOf(cfgDesc, []);
  await store.push(m.desc, m.bytes);
  await store.tag(m.desc, tag);
  return m;
}

export async function readStream(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

/** Deterministic pseudo-random stream (xorshift32): large content without holding it in memory. */
export function generated(size: number, seed: number, chunk = 1 << 20): () => Readable {
  return () => {
    let x = seed >>> 0 || 1;
    let left = size;
    return new Readable({
      read() {
        if (left === 0) return void this.push(null);
        const n = Math.min(chunk, left);
        const b = Buffer.alloc(n);
        for (let i = 0; i + 4 <= n; i += 4) {
          x ^= x << 13;
          x >>>= 0;
          x ^= x >>> 17;
          x ^= x << 5;
          x >>>= 0;
          b.writeUInt32LE(x, i);
        }
        left -= n;
        this.push(b);
      },
    });
  };
}

export async function digestOfStream(s: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** A Readable that records whether anyone read from it. */
function untouchable(): { stream: Readable; wasRead: () => boolean } {
  let read = false;
  const stream = new Readable({
    read() {
      read = true;
      this.push(null);
    },
  });
  return { stream, wasRead: () => read };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<BkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a ${code} error`).toBeInstanceOf(BkError);
  expect((err as BkError).code).toBe(code);
  return err as BkError;
}

/** Fetch then read; some backends fail at fetch(), others while streaming. */
async function fetchAll(store: ContentStore, desc: Descriptor, offset?: number): Promise<Buffer> {
  return readStream(await store.fetch(desc, offset === undefined ? {} : { offset }));
}

export function describeStoreConformance(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`ContentStore conformance: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: ContentStore;

    beforeAll(async () => {
      sut = await makeStore();
      store = sut.store;
    });
    afterAll(async () => {
      await sut?.cleanup();
    });

    it('has a location', () => {
      expect(typeof store.location).toBe('string');
      expect(store.location.length).toBeGreaterThan(0);
    });

    it('round-trips a blob pushed from bytes and from a stream', async () => {
      const a = uniqueBytes(4096);
      const da = blobOf(a);
      expect(await store.push(da, a)).toEqual({ outcome: 'uploaded', bytes: a.length });
      expect(await fetchAll(store, da)).toEqual(a);

      const b = uniqueBytes(70_000);
      const db = blobOf(b);
      const r = await store.push(db, Readable.from([b.subarray(0, 1000), b.subarray(1000)]));
      expect(r.outcome).toBe('uploaded');
      expect(await fetchAll(store, db)).toEqual(b);
    });

    it('round-trips an empty blob', async () => {
      const e = Buffer.alloc(0);
      const d = blobOf(e, MT.buildkitCacheConfig);
      expect(['uploaded', 'exists']).toContain((await store.push(d, e)).outcome);
      expect(await fetchAll(store, d)).toEqual(e);
    });

    it('fetches from an offset', async () => {
      const a = uniqueBytes(10_000);
      const d = blobOf(a);
      await store.push(d, a);
      expect(await fetchAll(store, d, 1234)).toEqual(a.subarray(1234));
      expect(await fetchAll(store, d, a.length - 1)).toEqual(a.subarray(a.length - 1));
      expect(await fetchAll(store, d, a.length)).toEqual(Buffer.alloc(0));
    });

    it('answers exists() true and false', async () => {
      const a = uniqueBytes(100);
      const d = blobOf(a);
      expect(await store.exists(d)).toBe(false);
      await store.push(d, a);
      expect(await store.exists(d)).toBe(true);
    });

    it('skips existing content without reading it', async () => {
      const a = uniqueBytes(2048);
      const d = blobOf(a);
      await store.push(d, a);
      const probe = untouchable();
      expect(await store.push(d, probe.stream)).toEqual({ outcome: 'exists', bytes: 0 });
      expect(probe.wasRead()).toBe(false);
    });

    it('rejects a digest mismatch with DATA_LOSS and stores nothing', async () => {
      const claimed = uniqueBytes(5000);
      const actual = uniqueBytes(5000);
      const d = blobOf(claimed);
      await expectCode(store.push(d, actual), 'DATA_LOSS');
      await expectCode(store.push(d, Readable.from([actual])), 'DATA_LOSS');
      expect(await store.exists(d)).toBe(false);
      expect(await store.exists(blobOf(actual))).toBe(false);
    });

    it('rejects a size mismatch either way with DATA_LOSS and stores nothing', async () => {
      const a = uniqueBytes(3000);
      const longer = { ...blobOf(a), size: a.length + 10 };
      await expectCode(store.push(longer, a), 'DATA_LOSS');
      expect(await store.exists(longer)).toBe(false);
      const b = uniqueBytes(3000);
      const shorter = { ...blobOf(b), size: b.length - 10 };
      await expectCode(store.push(shorter, Readable.from([b])), 'DATA_LOSS');
      expect(await store.exists(shorter)).toBe(false);
    });

    it('fails fetch of an unknown blob with NOT_FOUND', async () => {
      const d = blobOf(uniqueBytes(10));
      await expectCode(fetchAll(store, d), 'NOT_FOUND');
    });

    it('pushes a manifest, tags it and resolves the tag', async () => {
      const cfg = uniqueBytes(300);
      const layer = uniqueBytes(2000);
      const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
      const layerDesc = blobOf(layer);
      await store.push(cfgDesc, cfg);
      await store.push(layerDesc, layer);
      const m = manifestOf(cfgDesc, [layerDesc]);
      expect(await store.exists(m.desc)).toBe(false);
      expect(await store.push(m.desc, m.bytes)).toEqual({ outcome: 'uploaded', bytes: m.bytes.length });
      expect(await store.exists(m.desc)).toBe(true);
      expect((await store.push(m.desc, untouchable().stream)).outcome).toBe('exists');

      const tag = `t${counter++}`;
      await store.tag(m.desc, tag);
      const resolved = await store.resolve(tag);
      expect({ mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.size }).toEqual(m.desc);
      expect((await store.resolve(m.desc.digest)).digest).toBe(m.desc.digest);
      expect(await fetchAll(store, m.desc)).toEqual(m.bytes);
      expect(await fetchAll(store, cfgDesc)).toEqual(cfg);
    });

    it('rejects manifest bytes that do not match their descriptor', async () => {
      const cfg = uniqueBytes(100);
      const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
      await store.push(cfgDesc, cfg);
      const m = manifestOf(cfgDesc, []);
      const other = manifestOf(cfgDesc, [cfgDesc]);
      await expectCode(store.push(m.desc, other.bytes), 'DATA_LOSS');
      expect(await store.exists(m.desc)).toBe(false);
    });

    it('fails resolve of an unknown tag with NOT_FOUND', async () => {
      await expectCode(store.resolve(`missing-${counter++}`), 'NOT_FOUND');
    });

    it('moves a tag when it is tagged again', async () => {
      const cfg = uniqueBytes(200);
      const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
      await store.push(cfgDesc, cfg);
      const l1 = uniqueBytes(100);
      const l2 = uniqueBytes(100);
      await store.push(blobOf(l1), l1);
      await store.push(blobOf(l2), l2);
      const m1 = manifestOf(cfgDesc, [blobOf(l1)]);
      const m2 = manifestOf(cfgDesc, [blobOf(l2)]);
      await store.push(m1.desc, m1.bytes);
      await store.push(m2.desc, m2.bytes);
      const tag = `move${counter++}`;
      await store.tag(m1.desc, tag);
      expect((await store.resolve(tag)).digest).toBe(m1.desc.digest);
      await store.tag(m2.desc, tag);
      expect((await store.resolve(tag)).digest).toBe(m2.desc.digest);
      // The old manifest stays reachable by digest.
      expect(await fetchAll(store, m1.desc)).toEqual(m1.bytes);
    });

    it('streams a 20 MiB blob both ways', async () => {
      const size = 20 << 20;
      const open = generated(size, 0x5eed + counter++);
      const { digest } = await digestOfStream(open());
      const d: Descriptor = { mediaType: MT.ociLayerGzip, digest, size };
      const r = await store.push(d, open());
      expect(r).toEqual({ outcome: 'uploaded', bytes: size });
      expect(await digestOfStream(await store.fetch(d))).toEqual({ digest, size });
    });
  });
}
