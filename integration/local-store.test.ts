// The local store under real processes (issue 10, items 5 and 9): writes to
// places that are not directories on a real file system fail at once with a
// typed error (the CLI exits 2, the daemon answers and gives its slot back),
// and a daemon re-exporting over a corrupt blob asks for it again and
// replaces it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { BK } from '../test/fixtures.js';
import { synthetic } from '../test/client/synthetic.js';
import { runCli } from './harness/cli.js';
import { startDaemon } from './harness/daemon.js';

describe('writes to places that are not directories on a real file system', () => {
  for (const dest of ['/proc/self/x', '/sys/bkcache-x', '/dev/null']) {
    it(`bkcache copy to dest=${dest} fails at once with exit 2`, async () => {
      const r = await runCli(['copy', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')}`, '--export-cache', `type=local,dest=${dest}`]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/INVALID_ARGUMENT/);
    });
  }

  it('a daemon answers Export to /proc with INVALID_ARGUMENT, releases the slot, and keeps serving', async () => {
    const d = await startDaemon();
    const c = connect(d.addr);
    try {
      const s = synthetic([1000]);
      // More failed exports than the daemon has export slots (4): each one must give its slot back.
      for (let i = 0; i < 6; i++) {
        await expect(c.export('type=local,dest=/proc/self/x', s.graph, s.provider)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      }
      const ok = await c.export('type=local,dest=good', s.graph, s.provider);
      expect(ok.manifest).toBeDefined();
      expect(d.alive()).toBe(true);
    } finally {
      c.close();
      await d.stop();
      d.cleanup();
    }
  });
});

describe('a daemon re-exporting over a corrupt local blob (item 5)', () => {
  it('asks the client for that blob again and replaces it; the others are skipped', async () => {
    const d = await startDaemon();
    const c = connect(d.addr);
    try {
      const s = synthetic([200_000, 300_000]);
      const first = await c.export('type=local,dest=cache/app', s.graph, s.provider);
      expect(first.stats.uploaded).toBe(s.blobs.size);
      const [victim, good] = [...s.blobs.entries()][0]!;
      const file = path.join(d.root, 'cache', 'app', 'blobs', 'sha256', victim.slice(7));
      const bad = Buffer.from(good);
      bad[bad.length >> 1]! ^= 0xff;
      writeFileSync(file, bad);
      const again = await c.export('type=local,dest=cache/app', s.graph, s.provider);
      expect(again.requested).toEqual([victim]);
      expect(again.stats.skipped).toBe(s.blobs.size - 1);
      expect(readFileSync(file).equals(good)).toBe(true);
      // And a read of a blob corrupted after that fails with DATA_LOSS naming it.
      writeFileSync(file, bad);
      await expect(c.readBlob('type=local,src=cache/app', victim)).rejects.toMatchObject({ code: 'DATA_LOSS', message: expect.stringContaining(victim) });
      expect(await c.health()).toBe('SERVING');
    } finally {
      c.close();
      await d.stop();
      d.cleanup();
    }
  });
});
