// `bkcache prune` as a real process (issue 10, items 12, 13): prune refuses
// directories it cannot prove garbage in, --dry-run lists without deleting,
// and a daemon SIGKILLed mid-export leaves temp files that prune and the
// next daemon start remove while the tag still names the last complete cache.
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { importChain } from '../src/cache/operations.js';
import { connect } from '../src/client/index.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import { BK } from '../test/fixtures.js';
import { synthetic, writeContentStore } from '../test/client/synthetic.js';
import { tempDir } from '../test/tmp.js';
import { runCli, runJson } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';

const tmp = () => tempDir('bkcache-prune-cli-');

/** Every file under blobs/, relative, sorted. */
function blobFiles(dir: string): string[] {
  const out: string[] = [];
  for (const alg of readdirSync(path.join(dir, 'blobs'))) for (const f of readdirSync(path.join(dir, 'blobs', alg))) out.push(`${alg}/${f}`);
  return out.sort();
}
const sizeOf = (file: string) => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
const ingests = (dir: string) => blobFiles(dir).filter((f) => f.endsWith('.ingest'));

/** A copy of a BuildKit fixture plus one orphan blob. */
function fixtureWithOrphan(): { dir: string; orphan: string } {
  const dir = path.join(tmp(), 'cache');
  cpSync(path.join(BK, 'local-index-max'), dir, { recursive: true });
  const orphan = 'f'.repeat(64);
  // Not a real digest of its bytes: prune judges names, and this one is garbage.
  writeFileSync(path.join(dir, 'blobs', 'sha256', orphan), 'orphan');
  return { dir, orphan: `sha256/${orphan}` };
}

describe('bkcache prune (real process)', () => {
  const refusals: [string, (dir: string) => void][] = [
    ["buildkitd's content store (no index.json, no oci-layout)", (dir) => {
      rmSync(path.join(dir, 'index.json'));
      rmSync(path.join(dir, 'oci-layout'));
    }],
    ['a 0-byte index.json', (dir) => writeFileSync(path.join(dir, 'index.json'), '')],
    ['an entry without mediaType', (dir) => {
      const f = path.join(dir, 'index.json');
      const idx = JSON.parse(readFileSync(f, 'utf8')) as { manifests: Record<string, unknown>[] };
      for (const m of idx.manifests) delete m.mediaType;
      writeFileSync(f, JSON.stringify(idx));
    }],
    ['blobs and oci-layout without index.json (an export that died)', (dir) => rmSync(path.join(dir, 'index.json'))],
  ];
  for (const [what, damage] of refusals) {
    it(`${what}: exit 2, one line, nothing deleted (dry run too)`, async () => {
      const { dir } = fixtureWithOrphan();
      damage(dir);
      const before = blobFiles(dir);
      for (const extra of [[], ['--dry-run']]) {
        const r = await runCli(['prune', '--store', dir, ...extra]);
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/refusing to prune .*nothing was deleted \[INVALID_ARGUMENT\]/);
      }
      expect(blobFiles(dir)).toEqual(before);
    });
  }

  it('a real content store as buildkitd writes it is refused', async () => {
    const dir = tmp();
    writeContentStore(dir, synthetic([1000, 2000]).blobs);
    const before = blobFiles(dir);
    expect((await runCli(['prune', '--store', dir])).code).toBe(2);
    expect(blobFiles(dir)).toEqual(before);
  });

  it('--dry-run lists the orphan and deletes nothing; prune then deletes exactly it', async () => {
    const { dir, orphan } = fixtureWithOrphan();
    const before = blobFiles(dir);
    const dry = await runCli(['prune', '--store', dir, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^would delete ${orphan.replace('/', ':')} \\(6 B\\)$`, 'm'));
    expect(dry.stdout).toMatch(/would delete 1 /);
    expect(blobFiles(dir)).toEqual(before);
    const res = await runJson<{ dryRun: boolean; deleted: number; blobs: { digest: string }[] }>(['prune', '--store', dir, '--format', 'json']);
    expect(res).toMatchObject({ dryRun: false, deleted: 1, blobs: [{ digest: orphan.replace('/', ':') }] });
    expect(blobFiles(dir)).toEqual(before.filter((f) => f !== orphan));
    expect((await runCli(['inspect', '--import-cache', `type=local,src=${dir}`, '--format', 'json'])).code).toBe(0);
  });

  it('bad flags exit 2', async () => {
    expect((await runCli(['prune'])).code).toBe(2);
    expect((await runCli(['prune', '--store', tmp(), '--format', 'yaml'])).code).toBe(2);
  });
});

describe('a daemon SIGKILLed mid-export (item 13)', () => {
  const started: DaemonProcess[] = [];
  afterAll(async () => {
    for (const d of started) {
      await d.stop('SIGKILL');
      d.cleanup();
    }
  });

  /**
   * Blobs over 1.1 MiB send all but their last byte and then stall, as a
   * solver that hangs would; smaller ones complete. The client sends whole
   * 1 MiB chunks, and may send one blob at a time: so the first large blob
   * reaches the daemon in part and stays open, whatever the order.
   */
  const stalling = (blobs: Map<string, Buffer>) => ({
    open(desc: Descriptor) {
      const data = blobs.get(desc.digest)!;
      let sent = false;
      return new Readable({
        read() {
          if (sent) return;
          sent = true;
          if (data.length < 1.1 * (1 << 20)) {
            this.push(data);
            this.push(null);
          } else this.push(data.subarray(0, data.length - 1));
        },
      });
    },
  });

  /** Exports a complete cache, then starts a second export that stalls, and SIGKILLs the daemon once ingest files hold bytes. */
  async function killMidExport(root?: string): Promise<{ d: DaemonProcess; dest: string; first: string }> {
    const d = await startDaemon(root ? { root } : {});
    started.push(d);
    const dest = path.join(root ?? d.root, 'cache', 'app');
    const c = connect(d.addr);
    const s1 = synthetic(undefined, 'first');
    const first = (await c.export('type=local,dest=cache/app', s1.graph, s1.provider)).manifest!.digest;
    const s2 = synthetic(undefined, 'second');
    const dying = c.export('type=local,dest=cache/app', s2.graph, stalling(s2.blobs)).catch((e: unknown) => e);
    for (;;) {
      // A small blob's ingest file may be renamed into place between the listing and the stat.
      const withBytes = ingests(dest).filter((f) => sizeOf(path.join(dest, 'blobs', f)) > 0);
      if (withBytes.length > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await d.stop('SIGKILL');
    await dying;
    c.close();
    expect(ingests(dest).length).toBeGreaterThan(0);
    return { d, dest, first };
  }

  /** The tag names the first export's manifest, and every blob it reaches reads back verified. */
  async function expectComplete(dest: string, manifest: string): Promise<void> {
    const imported = await importChain([{ type: 'local', attrs: { src: dest } }]);
    expect(imported.misses).toEqual([]);
    expect(imported.misses).toEqual([]);
    expect(imported.hit?.loaded.manifest.digest).toBe(manifest);
    for (const desc of imported.graph.marshal().descriptors.values()) {
      const stream = await imported.blobs.fetch(desc);
      let n = 0;
      for await (const chunk of stream) n += (chunk as Buffer).length;
      expect(n).toBe(desc.size);
    }
  }

  it('bkcache prune removes the ingest files; the tag still names the complete first cache', async () => {
    const { dest, first } = await killMidExport();
    const res = await runJson<{ tempFiles: number; deleted: number }>(['prune', '--store', dest, '--format', 'json']);
    expect(res.tempFiles).toBeGreaterThan(0);
    expect(ingests(dest)).toEqual([]);
    await expectComplete(dest, first);
  });

  it('the next daemon start on the same root removes them', async () => {
    const { d, dest, first } = await killMidExport();
    const next = await startDaemon({ root: d.root });
    started.push(next);
    expect(ingests(dest)).toEqual([]);
    await expectComplete(dest, first);
  });
});
