// Prune deletes only what it can prove is garbage (issue 10, items 12 and 13):
// it refuses anything that is not an OCI layout it fully understands, with
// nothing deleted, offers a dry run, and removes temp files of dead writers.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MT } from '../../../src/oci/media-types.js';
import { LocalStore, removeStaleTempFiles } from '../../../src/store/local/index.js';
import { BK, readmeSummaries } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { blobOf, manifestOf, uniqueBytes } from '../conformance.js';

const tmp = () => tempDir('bkcache-prune-');

/** Every file under blobs/, relative, sorted. */
function blobFiles(dir: string): string[] {
  const out: string[] = [];
  for (const alg of readdirSync(path.join(dir, 'blobs'))) for (const f of readdirSync(path.join(dir, 'blobs', alg))) out.push(`${alg}/${f}`);
  return out.sort();
}

/** A layout with a tagged cache of `layers` layers plus one orphan blob. */
async function layout(layers = 9) {
  const dir = tmp();
  const store = new LocalStore(dir, { create: true });
  const ls = [];
  for (let i = 0; i < layers; i++) {
    const b = uniqueBytes(200 + i);
    ls.push(blobOf(b));
    await store.push(blobOf(b), b);
  }
  const cfg = uniqueBytes(64);
  const cd = blobOf(cfg, MT.buildkitCacheConfig);
  await store.push(cd, cfg);
  const m = manifestOf(cd, ls);
  await store.push(m.desc, m.bytes);
  await store.tag(m.desc, 'latest');
  const orphan = uniqueBytes(77);
  await store.push(blobOf(orphan), orphan);
  return { dir, store, manifest: m.desc, orphan: blobOf(orphan) };
}

const refusal = { code: 'INVALID_ARGUMENT', reason: 'not-a-layout' };

describe('prune refuses what it cannot prove is garbage, and deletes nothing', () => {
  const cases: [string, (dir: string) => void][] = [
    ['no index.json (a content store such as buildkitd\'s)', (dir) => rmSync(path.join(dir, 'index.json'))],
    ['no index.json and no oci-layout', (dir) => (rmSync(path.join(dir, 'index.json')), rmSync(path.join(dir, 'oci-layout')))],
    ['a 0-byte index.json', (dir) => writeFileSync(path.join(dir, 'index.json'), '')],
    ['index.json that is not JSON', (dir) => writeFileSync(path.join(dir, 'index.json'), '{"schemaVersion":2,')],
    ['index.json with manifests of the wrong type', (dir) => writeFileSync(path.join(dir, 'index.json'), '{"schemaVersion":2,"manifests":7}')],
    ['index.json without manifests', (dir) => writeFileSync(path.join(dir, 'index.json'), '{"schemaVersion":2}')],
    ['index.json of another schemaVersion', (dir) => rewriteIndex(dir, (i) => ({ ...i, schemaVersion: 3 }))],
    ['an entry without mediaType', (dir) => rewriteIndex(dir, (i) => ({ ...i, manifests: i.manifests.map(({ mediaType: _, ...m }) => m) }))],
    ['an entry with a bad digest', (dir) => rewriteIndex(dir, (i) => ({ ...i, manifests: [...i.manifests, { ...i.manifests[0]!, digest: 'sha256:../../x' }] }))],
    ['an entry of a type prune cannot walk', (dir) => rewriteIndex(dir, (i) => ({ ...i, manifests: [...i.manifests, { ...i.manifests[0]!, mediaType: 'application/vnd.example.thing+json' }] }))],
    ['an entry whose manifest is missing', (dir) => rewriteIndex(dir, (i) => ({ ...i, manifests: [...i.manifests, { ...i.manifests[0]!, digest: 'sha256:' + 'e'.repeat(64) }] }))],
    ['an entry whose manifest is corrupt', (dir) => {
      const i = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const f = path.join(dir, 'blobs', 'sha256', i.manifests[0]!.digest.slice(7));
      writeFileSync(f, readFileSync(f, 'utf8').replace('"layers"', '"layerz"'));
    }],
    ['oci-layout of another version', (dir) => writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}')],
  ];
  for (const [what, damage] of cases) {
    it(what, async () => {
      const { dir } = await layout();
      damage(dir);
      const before = blobFiles(dir);
      expect(before).toHaveLength(12);
      await expect(new LocalStore(dir).prune()).rejects.toMatchObject(refusal);
      await expect(new LocalStore(dir).prune({ dryRun: true })).rejects.toMatchObject(refusal);
      expect(blobFiles(dir)).toEqual(before);
    });
  }

  it('an index whose child has an unknown media type keeps everything', async () => {
    const dir = tmp();
    const store = new LocalStore(dir, { create: true });
    const l = uniqueBytes(300);
    await store.push(blobOf(l, 'application/vnd.example.unknown'), l);
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [blobOf(l, 'application/vnd.example.unknown')] }));
    await store.push(blobOf(idx, MT.ociIndex), idx);
    await store.tag(blobOf(idx, MT.ociIndex), 'latest');
    const o = uniqueBytes(10);
    await store.push(blobOf(o), o);
    await expect(store.prune()).rejects.toMatchObject(refusal);
    expect(blobFiles(dir)).toHaveLength(3);
  });

  it('a failed first export (blobs and oci-layout, no tag yet) leaves a valid index.json, not a guess', async () => {
    const dir = tmp();
    const store = new LocalStore(dir, { create: true });
    const b = uniqueBytes(100);
    await store.push(blobOf(b), b);
    // index.json is written before oci-layout and blobs/: the layout is valid from its first file.
    expect(JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'))).toEqual({ schemaVersion: 2, manifests: [] });
  });
});

function rewriteIndex(dir: string, f: (i: { schemaVersion: number; manifests: Record<string, unknown>[] }) => unknown): void {
  const file = path.join(dir, 'index.json');
  writeFileSync(file, JSON.stringify(f(JSON.parse(readFileSync(file, 'utf8')))));
}

describe('prune on valid layouts', () => {
  it('--dry-run lists exactly what a real prune then deletes', async () => {
    const { dir, store, orphan } = await layout();
    const before = blobFiles(dir);
    const dry = await store.prune({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, kept: 11, deleted: 1, deletedBytes: 77, blobs: [{ digest: orphan.digest, size: 77 }] });
    expect(blobFiles(dir)).toEqual(before);
    const real = await store.prune();
    expect(real).toMatchObject({ dryRun: false, kept: 11, deleted: 1, blobs: dry.blobs });
    expect(blobFiles(dir)).toEqual(before.filter((f) => f !== `sha256/${orphan.digest.slice(7)}`));
    expect((await store.resolve('latest')).digest).toBeDefined();
  });

  it('deletes nothing from any layout BuildKit wrote (everything is reachable)', async () => {
    for (const name of readmeSummaries().keys()) {
      const dir = path.join(tmp(), name);
      cpSync(path.join(BK, name), dir, { recursive: true });
      const before = blobFiles(dir);
      const res = await new LocalStore(dir).prune();
      expect(res.deleted, name).toBe(0);
      expect(blobFiles(dir), name).toEqual(before);
    }
  });

  it('leaves files in blobs/ that are not named like a blob', async () => {
    const { dir, store } = await layout();
    const odd = ['README', 'A'.repeat(64), 'ab', 'x.partial'];
    for (const n of odd) writeFileSync(path.join(dir, 'blobs', 'sha256', n), 'keep me');
    mkdirSync(path.join(dir, 'blobs', 'other-alg'));
    writeFileSync(path.join(dir, 'blobs', 'other-alg', 'f'.repeat(64)), 'keep me');
    await store.prune();
    for (const n of odd) expect(existsSync(path.join(dir, 'blobs', 'sha256', n))).toBe(true);
    expect(existsSync(path.join(dir, 'blobs', 'other-alg', 'f'.repeat(64)))).toBe(true);
  });

  it('accepts an index with no entries written as null and collects its blobs', async () => {
    const { dir, store } = await layout(2);
    writeFileSync(path.join(dir, 'index.json'), '{"schemaVersion":2,"manifests":null}');
    expect((await store.prune()).deleted).toBe(5);
  });
});

describe('temp files of dead writers (item 13)', () => {
  /** A child process that starts a push of a stream that never ends, then waits to be killed. */
  function stalledPush(dir: string, desc: { digest: string; size: number }) {
    const script = `
      const { LocalStore } = await import(${JSON.stringify(path.resolve('dist/src/store/local/index.js'))});
      const { Readable } = await import('node:stream');
      const [dir, digest, size] = process.argv.slice(1);
      let sent = false;
      const src = new Readable({ read() { if (!sent) { sent = true; this.push(Buffer.alloc(1000, 1)); console.log('writing'); } } });
      await new LocalStore(dir, { create: true }).push({ mediaType: 'application/octet-stream', digest, size: Number(size) }, src);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir, desc.digest, String(desc.size)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const writing = new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('writing') && resolve()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    return { child, writing, exited };
  }

  const ingests = (dir: string) => blobFiles(dir).filter((f) => f.endsWith('.ingest'));

  /** Waits (bounded by the test timeout) until `dir` has an ingest file with bytes in it. */
  async function ingestWithBytes(dir: string): Promise<void> {
    for (;;) {
      const f = ingests(dir)[0];
      if (f && (statSync(path.join(dir, 'blobs', f), { throwIfNoEntry: false })?.size ?? 0) > 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('prune removes the ingest file of a killed writer and keeps a live one', async () => {
    const { dir, store, manifest } = await layout(3);
    const dead = stalledPush(dir, blobOf(uniqueBytes(5000)));
    await dead.writing;
    await ingestWithBytes(dir);
    dead.child.kill('SIGKILL');
    await dead.exited;
    expect(ingests(dir)).toHaveLength(1);

    // A push of this process still in flight: its ingest file must stay.
    const live = new Readable({ read() {} });
    live.push(Buffer.alloc(10, 2));
    const pushing = store.push(blobOf(uniqueBytes(20)), live).catch((e: unknown) => e);
    while (ingests(dir).length < 2) await new Promise((r) => setTimeout(r, 20));
    const liveFile = ingests(dir).find((f) => f.includes(`.${process.pid}-`))!;
    expect(liveFile).toBeDefined();

    const dry = await store.prune({ dryRun: true });
    expect(dry).toMatchObject({ tempFiles: 1 });
    expect(ingests(dir)).toHaveLength(2);
    const res = await store.prune();
    expect(res).toMatchObject({ tempFiles: 1, tempBytes: expect.any(Number) });
    expect(ingests(dir)).toEqual([liveFile]);
    live.destroy(new Error('stop'));
    await pushing;
    expect(ingests(dir)).toEqual([]);
    expect((await store.resolve('latest')).digest).toBe(manifest.digest);
  });

  it('a reused pid (same pid, other start time) does not keep a file alive; unknown owners only when old', async () => {
    const { dir, store } = await layout(1);
    const sha = path.join(dir, 'blobs', 'sha256');
    const reused = `${'1'.repeat(64)}.${process.pid}-1-abcdefabcdef.ingest`;
    const oldFresh = `${'2'.repeat(64)}.abcdefabcdef.ingest`;
    const oldStale = `${'3'.repeat(64)}.abcdefabcdef.ingest`;
    for (const n of [reused, oldFresh, oldStale]) writeFileSync(path.join(sha, n), 'partial');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(path.join(sha, oldStale), twoHoursAgo, twoHoursAgo);
    await store.prune();
    expect(ingests(dir)).toEqual([`sha256/${oldFresh}`]);
  });

  it('removeStaleTempFiles (daemon start) sweeps every layout under a root, nested ones too', async () => {
    const root = tmp();
    const a = path.join(root, 'cache', 'a', 'app');
    const b = path.join(root, 'cache', 'b', 'app');
    for (const d of [root, a, b]) {
      const s = new LocalStore(d, { create: true });
      const x = uniqueBytes(10);
      await s.push(blobOf(x), x);
      writeFileSync(path.join(d, 'blobs', 'sha256', `${'4'.repeat(64)}.999999999-5-abcdefabcdef.ingest`), 'partial');
      writeFileSync(path.join(d, '.index.json.999999999-5-abcdefabcdef.tmp'), 'partial');
    }
    const res = await removeStaleTempFiles(root);
    expect(res.files).toHaveLength(6);
    for (const d of [root, a, b]) {
      expect(ingests(d)).toEqual([]);
      expect(readdirSync(d).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      expect(blobFiles(d)).toHaveLength(1);
    }
  });
});

describe('prune walks a manifest named elsewhere as a leaf', () => {
  it('keeps what a manifest names when an index also lists its digest under a layer type', async () => {
    const { dir, store, manifest, orphan } = await layout(3);
    // An index naming the manifest twice: as a manifest, then (the lie) as a layer.
    const lie = { ...manifest, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
    const idxBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [manifest, lie] }));
    const idx = blobOf(idxBytes, MT.ociIndex);
    await store.push(idx, idxBytes);
    await store.tag(idx, 'both');
    rewriteIndex(dir, (i) => ({ ...i, manifests: i.manifests.filter((m) => (m.annotations as Record<string, string>)['org.opencontainers.image.ref.name'] === 'both') }));
    const before = blobFiles(dir);
    const res = await store.prune();
    expect(res.blobs.map((b) => b.digest)).toEqual([orphan.digest]);
    expect(blobFiles(dir)).toEqual(before.filter((f) => f !== `sha256/${orphan.digest.slice(7)}`));
  });
});
