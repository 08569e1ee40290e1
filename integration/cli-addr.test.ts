// The CLI through a running daemon (--addr) prints what it prints in-process.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BK, readmeSummaries } from '../test/fixtures.js';
import { runCli } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { tempDir } from '../test/tmp.js';

let d: DaemonProcess;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
  d?.cleanup();
});

const tmp = () => tempDir('bkcache-addr-');

describe('--addr gives the same results as in-process runs', () => {
  for (const name of readmeSummaries().keys()) {
    it(`inspect ${name}, json and text`, async () => {
      const spec = `type=local,src=${path.join(BK, name)}`;
      for (const format of ['json', 'text']) {
        const local = await runCli(['inspect', '--import-cache', spec, '--format', format]);
        const remote = await runCli(['inspect', '--import-cache', spec, '--format', format, '--addr', d.addr]);
        expect(local.code).toBe(0);
        expect(remote.code, remote.stderr).toBe(0);
        if (name === 'inline-image' && format === 'text') {
          // The daemon sends one merged graph; the tree is the same for a single platform.
          expect(remote.stdout.split('\n').slice(0, 6)).toEqual(local.stdout.split('\n').slice(0, 6));
        } else {
          expect(remote.stdout).toBe(local.stdout);
        }
      }
    });
  }

  it('copy: same manifest, config and stats', async () => {
    const src = `type=local,src=${path.join(BK, 'local-index-max')}`;
    const run = (dest: string, extra: string[]) =>
      runCli(['copy', '--import-cache', src, '--export-cache', `type=local,dest=${dest},image-manifest=true`, '--format', 'json', ...extra]);
    const a = await run(tmp(), []);
    const b = await run(tmp(), ['--addr', d.addr]);
    expect(b.code, b.stderr).toBe(0);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    expect(jb.manifest).toEqual(ja.manifest);
    expect(jb.config).toEqual(ja.config);
    expect(jb.stats).toEqual(ja.stats);
  });

  it('errors keep their code and message through the daemon', async () => {
    const args = ['inspect', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')},tag=nope`];
    const local = await runCli(args);
    const remote = await runCli([...args, '--addr', d.addr]);
    expect(remote.code).toBe(local.code);
    expect(remote.stderr).toBe(local.stderr);
  });

  it('health answers SERVING', async () => {
    const r = await runCli(['health', '--addr', d.addr]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('SERVING');
  });
});

describe('progress output', () => {
  it('plain prints a line per blob step; json one object per event', async () => {
    const src = `type=local,src=${path.join(BK, 'registry-index-oci-max')}`;
    const plain = await runCli(['copy', '--import-cache', src, '--export-cache', `type=local,dest=${tmp()}`, '--progress', 'plain']);
    expect(plain.code).toBe(0);
    expect(plain.stderr.match(/^blob sha256:[a-f0-9]{64} uploaded /gm)).toHaveLength(8);
    expect(plain.stderr).toMatch(/^tagged latest -> sha256:/m);
    const json = await runCli(['copy', '--import-cache', src, '--export-cache', `type=local,dest=${tmp()}`, '--progress', 'json']);
    const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'blob' && e.status === 'uploaded')).toHaveLength(8);
    expect(events.at(-1)).toMatchObject({ type: 'tag', tag: 'latest' });
  });
  it('rejects an unknown mode', async () => {
    const r = await runCli(['copy', '--import-cache', 'type=local,src=/x', '--export-cache', 'type=local,dest=/y', '--progress', 'fancy']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown --progress fancy/);
  });
});
