// The leases directory of a layout (.bkcache/leases) is input like any other
// file there: prune and gc read it and remove the leases of dead writers, so
// a symlink, a FIFO, a huge file or a stranger's file in it must neither send
// a removal outside the layout, nor block prune while it holds the index
// lock, nor be removed as if it were a lease.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { digestBytes } from '../../../src/oci/digest.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { OWNER } from '../../../src/store/local/owner.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { runCli } from '../../../integration/harness/cli.js';

/** A copy of a BuildKit layout plus one blob no entry names; returns the orphan's file. */
function layoutWithOrphan(): { dir: string; orphan: string } {
  const dir = path.join(tempDir('bkcache-lease-'), 'cache');
  cpSync(path.join(BK, 'local-index-max'), dir, { recursive: true });
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const bytes = Buffer.from('an orphan blob');
  const orphan = path.join(dir, 'blobs', 'sha256', digestBytes(bytes).slice(7));
  writeFileSync(orphan, bytes);
  return { dir, orphan };
}

const leases = (dir: string) => path.join(dir, '.bkcache', 'leases');
/** A lease name whose writer is this (live) process; `tag` a hex digit. */
const liveName = (tag: string) => `${OWNER}-${tag.repeat(12).slice(0, 12)}.lease`;
/** A lease name whose writer is gone. */
const deadName = `999999999-1-${'d'.repeat(12)}.lease`;

describe('a leases directory that is not one', () => {
  const cases: [string, (dir: string, outside: string) => void][] = [
    ['.bkcache/leases is a symlink out of the layout', (dir, outside) => {
      mkdirSync(path.join(dir, '.bkcache'));
      symlinkSync(outside, leases(dir));
    }],
    ['.bkcache is a symlink out of the layout', (dir, outside) => {
      mkdirSync(path.join(outside, 'leases'));
      symlinkSync(outside, path.join(dir, '.bkcache'));
    }],
  ];
  for (const [what, make] of cases) {
    it(`${what}: prune refuses, gc prunes nothing, and the files there stay`, async () => {
      const { dir, orphan } = layoutWithOrphan();
      const outside = tempDir('bkcache-outside-');
      make(dir, outside);
      const victims = [path.join(leases(dir), 'notes.txt'), path.join(leases(dir), deadName)];
      for (const v of victims) writeFileSync(v, 'precious');
      await expect(new LocalStore(dir).prune()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'not-a-layout' });
      await expect(new LocalStore(dir).prune({ dryRun: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      // gc removes the expired entry (an edit of index.json), then reports that prune refused.
      const r = await runCli(['gc', '--repository', `type=local,src=${dir}`, '--older-than', '1h']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/no blob was pruned: the leases of .* cannot be trusted/);
      for (const v of victims) expect(existsSync(v), v).toBe(true);
      expect(existsSync(orphan)).toBe(true);
    });
  }
});

describe('files in the leases directory', () => {
  it('only dead writers\' lease files are removed; other names, directories and symlinks stay', async () => {
    const { dir, orphan } = layoutWithOrphan();
    mkdirSync(leases(dir), { recursive: true });
    const outsideFile = path.join(tempDir('bkcache-outside-'), 'target');
    writeFileSync(outsideFile, 'precious');
    writeFileSync(path.join(leases(dir), deadName), 'sha256:' + 'a'.repeat(64) + '\n');
    writeFileSync(path.join(leases(dir), 'README'), 'a note');
    mkdirSync(path.join(leases(dir), `999999998-1-${'e'.repeat(12)}.lease`));
    symlinkSync(outsideFile, path.join(leases(dir), `999999997-1-${'f'.repeat(12)}.lease`));
    const res = await new LocalStore(dir).prune();
    expect(res.deleted).toBe(1);
    expect(existsSync(orphan)).toBe(false);
    expect(readdirSync(leases(dir)).sort()).toEqual(['999999997-1-ffffffffffff.lease', '999999998-1-eeeeeeeeeeee.lease', 'README']);
    expect(existsSync(outsideFile)).toBe(true);
  });

  it('a FIFO or a symlink to a device named as a live lease claims nothing and does not block prune', async () => {
    const { dir, orphan } = layoutWithOrphan();
    mkdirSync(leases(dir), { recursive: true });
    execFileSync('mkfifo', [path.join(leases(dir), liveName('a'))]);
    symlinkSync('/dev/zero', path.join(leases(dir), liveName('b')));
    // A live lease that is a symlink to a file listing the orphan: not one we wrote, so it claims nothing.
    const claims = path.join(tempDir('bkcache-outside-'), 'claims');
    writeFileSync(claims, `sha256:${path.basename(orphan)}\n`);
    symlinkSync(claims, path.join(leases(dir), liveName('c')));
    const res = await new LocalStore(dir).prune();
    expect(res.blobs.map((b) => b.digest)).toEqual([`sha256:${path.basename(orphan)}`]);
    expect(readdirSync(leases(dir))).toHaveLength(3);
  });

  it('a live lease too large to read is refused, not skipped: what it claims is unknown', async () => {
    const { dir, orphan } = layoutWithOrphan();
    mkdirSync(leases(dir), { recursive: true });
    const big = path.join(leases(dir), liveName('1'));
    writeFileSync(big, '');
    truncateSync(big, (64 << 20) + 1); // sparse: nothing is written
    await expect(new LocalStore(dir).prune()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'not-a-layout' });
    expect(existsSync(orphan)).toBe(true);
  });

  it('a regular live lease still protects what it claims', async () => {
    const { dir, orphan } = layoutWithOrphan();
    mkdirSync(leases(dir), { recursive: true });
    writeFileSync(path.join(leases(dir), liveName('2')), `sha256:${path.basename(orphan)}\n`);
    expect((await new LocalStore(dir).prune()).deleted).toBe(0);
    expect(existsSync(orphan)).toBe(true);
  });
});
