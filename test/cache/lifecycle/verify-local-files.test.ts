// What verify says of a layout whose blob files are not what their
// descriptors say: a file of the wrong size or bytes, or something that is no
// regular file (a symlink out of the layout, a FIFO, a directory) in the
// place of a layer, the cache config or the manifest. Each is a broken cache
// (exit 5, the digest listed), never a usage error (exit 2) and never a hang;
// --deep, which reads every blob, tells corrupt from missing.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyCache } from '../../../src/cache/lifecycle/verify.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { runCli } from '../../../integration/harness/cli.js';
import { readmeSummaries } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';
import { fixtureCopy } from './helpers.js';

const NAME = 'local-index-max';
const LAYER = 'sha256:14682e7a39f73fcc2417bc30a8a6d567ed4c1d80f19030df28a46f7238ac0842';
const summary = readmeSummaries().get(NAME)!;
const blobFile = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));

/** Ways to put something else in a blob's place. */
const damages: [string, (file: string) => void][] = [
  ['a symlink to the real bytes outside the layout', (file) => {
    const outside = path.join(tempDir('bkcache-vlf-'), 'blob');
    renameSync(file, outside);
    symlinkSync(outside, file);
  }],
  ['a FIFO', (file) => {
    rmSync(file);
    execFileSync('mkfifo', [file]);
  }],
  ['a directory', (file) => {
    rmSync(file);
    mkdirSync(file);
  }],
  ['a file one byte longer', (file) => appendFileSync(file, 'x')],
  ['a file of the right size with other bytes', (file) => writeFileSync(file, Buffer.alloc(statSync(file).size, 'x'))],
];

const places: [string, string][] = [
  ['a layer', LAYER],
  ['the cache config', summary.config!],
  ['the manifest', summary.manifest],
];

describe('blob files that are not the blob', () => {
  for (const [where, digest] of places) {
    for (const [what, damage] of damages) {
      it(`${where} is ${what}: broken, listed as corrupt with --deep (missing or corrupt without)`, async () => {
        const dir = fixtureCopy(NAME);
        damage(blobFile(dir, digest));
        for (const deep of [false, true]) {
          const v = await verifyCache(parseCacheSpec(`type=local,src=${dir}`), {}, { deep });
          await v.opened?.close();
          expect(v.report.ok).toBe(false);
          if (deep) expect(v.report.corrupt).toEqual([digest]);
          else expect([...v.report.missing, ...v.report.corrupt]).toEqual([digest]);
          if (where === 'a layer') expect(v.report.brokenRecords).toBeGreaterThan(0);
        }
      });
    }
  }

  it('the CLI exits 5 with one JSON object for a symlinked manifest and config', async () => {
    for (const digest of [summary.manifest, summary.config!]) {
      const dir = fixtureCopy(NAME);
      damages[0]![1](blobFile(dir, digest));
      const r = await runCli(['verify', '--deep', '--import-cache', `type=local,src=${dir}`, '--format', 'json']);
      expect(r.code, r.stderr).toBe(5);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, corrupt: [digest] });
    }
  });
});
