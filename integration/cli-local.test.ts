// The real CLI process on local layouts: inspect every fixture, and copy
// them between shapes and media type families without losing anything.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BK, readmeMerges, readmeSummaries, type FixtureSummary } from '../test/fixtures.js';
import { runCli, runJson } from './harness/cli.js';
import { tempDir } from '../test/tmp.js';

const summaries = readmeSummaries();
const tmp = () => tempDir('bkcache-cli-');
const local = (dir: string, extra = '') => `type=local,src=${dir}${extra}`;

type Summary = FixtureSummary;

const ownOptions: Record<string, string> = {
  'application/vnd.oci.image.index.v1+json': 'image-manifest=false',
  'application/vnd.docker.distribution.manifest.list.v2+json': 'oci-mediatypes=false',
  'application/vnd.oci.image.manifest.v1+json': 'image-manifest=true',
};

/** Layer descriptors (digest -> annotations) and the parsed config of a local cache. */
function contents(dir: string, s: Summary) {
  const blob = (d: string) => readFileSync(path.join(dir, 'blobs/sha256', d.slice(7)), 'utf8');
  const m = JSON.parse(blob(s.manifest));
  const layers: { digest: string; annotations: Record<string, string> }[] = (m.layers ?? m.manifests).filter(
    (d: { mediaType: string }) => d.mediaType !== 'application/vnd.buildkit.cacheconfig.v0',
  );
  return {
    layers: new Map(layers.map((l) => [l.digest, l.annotations])),
    mediaTypes: new Set(layers.map((l: unknown) => (l as { mediaType: string }).mediaType)),
    config: s.config ? JSON.parse(blob(s.config)) : null,
  };
}

describe('bkcache inspect (real process)', () => {
  for (const [name, expected] of summaries) {
    it(`${name}: --format json is the README's summary`, async () => {
      expect(await runJson(['inspect', '--import-cache', local(path.join(BK, name)), '--format', 'json'])).toEqual(expected);
    });
  }

  it('prints a table with the records tree by default', async () => {
    const r = await runCli(['inspect', '--import-cache', local(path.join(BK, 'registry-index-oci-max'))]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^kind {8}index$/m);
    expect(r.stdout).toMatch(/^records:$/m);
    expect(r.stdout).toMatch(/└─\[in 1 sel=a5bcd92e5ab3\] #8 83ca67c386cc -> d24e73ca8645/);
  });

  it('imports by digest= and by tag=', async () => {
    const dir = path.join(BK, 'local-index-max');
    const s = summaries.get('local-index-max')!;
    expect(await runJson(['inspect', '--import-cache', local(dir, `,digest=${s.manifest}`), '--format', 'json'])).toEqual(s);
    expect(await runJson(['inspect', '--import-cache', local(dir, ',tag=latest'), '--format', 'json'])).toEqual(s);
  });
});

describe('bkcache copy (real process)', () => {
  for (const [name, s] of summaries) {
    if (s.kind === 'inline') continue;
    it(`${name}: re-exported in its own shape keeps the config digest${name.startsWith('registry-') ? ' and the manifest digest' : ''}`, async () => {
      const out = tmp();
      const res = await runJson<{ manifest: { digest: string } }>([
        'copy',
        '--import-cache',
        local(path.join(BK, name)),
        '--export-cache',
        `type=local,dest=${out},${ownOptions[s.mediaType]}`,
        '--format',
        'json',
      ]);
      const got = await runJson<Summary>(['inspect', '--import-cache', local(out), '--format', 'json']);
      expect(got.config).toBe(s.config);
      expect(got.kind).toBe(s.kind);
      // Every fixture BuildKit wrote, local ones included, re-exports byte for byte.
      expect(got.manifest).toBe(s.manifest);
      expect(res.manifest.digest).toBe(s.manifest);
    });
  }

  const conversions: [string, string, string][] = [
    ['registry-index-oci-max', 'image-manifest=true', 'application/vnd.oci.image.manifest.v1+json'],
    ['registry-index-docker-min', '', 'application/vnd.oci.image.manifest.v1+json'],
    ['registry-imagemanifest-max', 'oci-mediatypes=false', 'application/vnd.docker.distribution.manifest.list.v2+json'],
    ['local-index-max', 'image-manifest=true', 'application/vnd.oci.image.manifest.v1+json'],
    ['registry-imagemanifest-zstd-max', 'image-manifest=false', 'application/vnd.oci.image.index.v1+json'],
  ];
  for (const [name, opts, mediaType] of conversions) {
    it(`${name} converted with "${opts || 'defaults'}" keeps every layer, annotation and record`, async () => {
      const src = path.join(BK, name);
      const out = tmp();
      await runJson(['copy', '--import-cache', local(src), '--export-cache', `type=local,dest=${out}${opts ? ',' + opts : ''}`, '--format', 'json']);
      const before = summaries.get(name)!;
      const after = await runJson<Summary>(['inspect', '--import-cache', local(out), '--format', 'json']);
      expect(after.mediaType).toBe(mediaType);
      expect(after.config).toBe(before.config);
      expect(after.records).toBe(before.records);
      expect(after.layers).toBe(before.layers);
      const a = contents(src, before);
      const b = contents(out, after);
      expect(b.layers).toEqual(a.layers);
      expect(b.config).toEqual(a.config);
      const oci = !mediaType.includes('docker');
      for (const mt of b.mediaTypes) expect(mt.startsWith(oci ? 'application/vnd.oci.image.layer' : 'application/vnd.docker.image.rootfs')).toBe(true);
    });
  }

  it('converts an inline cache into a registry-style cache', async () => {
    const out = tmp();
    await runJson(['copy', '--import-cache', local(path.join(BK, 'inline-image')), '--export-cache', `type=local,dest=${out}`, '--format', 'json']);
    const got = await runJson<Summary>(['inspect', '--import-cache', local(out), '--format', 'json']);
    expect(got).toMatchObject({ kind: 'image-manifest', layers: 5, records: 11 });
  });

  for (const m of readmeMerges()) {
    it(`merges ${m.sources.map((s) => path.basename(s)).join(' + ')} into BuildKit's merged config`, async () => {
      const out = tmp();
      const args = ['copy', ...m.sources.flatMap((s) => ['--import-cache', local(s)]), '--export-cache', `type=local,dest=${out}`, '--format', 'json'];
      const res = await runJson<{ config: { digest: string } }>(args);
      expect(res.config.digest).toBe(m.config);
    });
  }

  it('a second copy of an unchanged cache writes no layer bytes', async () => {
    const out = tmp();
    const args = ['copy', '--import-cache', local(path.join(BK, 'registry-index-oci-max')), '--export-cache', `type=local,dest=${out}`, '--format', 'json'];
    const first = await runJson<{ stats: { uploaded: number } }>(args);
    const second = await runJson<{ stats: { uploaded: number; uploadedBytes: number; skipped: number } }>(args);
    expect(first.stats.uploaded).toBe(8);
    expect(second.stats).toMatchObject({ uploaded: 0, uploadedBytes: 0, skipped: 8 });
  });
});

describe('bad input gives a one-line error and a non-zero exit', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown type', ['inspect', '--import-cache', 'type=s4,src=/x'], /unsupported cache type "s4"/],
    ['missing src', ['inspect', '--import-cache', 'type=local'], /needs src=DIR/],
    ['not key=value', ['inspect', '--import-cache', 'type=local,src'], /not key=value/],
    ['missing directory', ['inspect', '--import-cache', 'type=local,src=/nonexistent/bkcache'], /not a directory/],
    ['missing tag', ['inspect', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')},tag=nope`], /tag "nope" not found/],
    ['bad digest', ['inspect', '--import-cache', `type=local,src=${path.join(BK, 'local-index-max')},digest=sha256:zz`], /invalid digest/],
    [
      'image-manifest without OCI',
      ['copy', '--import-cache', local(path.join(BK, 'local-index-max')), '--export-cache', 'type=local,dest=/tmp/x,image-manifest=true,oci-mediatypes=false'],
      /OCI media types are required for the image-manifest cache format/,
    ],
    ['unknown flag', ['inspect', '--bogus'], /Unknown option/],
    ['unknown command', ['frobnicate'], /unknown command/],
    ['no export', ['copy', '--import-cache', 'type=local,src=/x'], /needs --export-cache/],
  ];
  for (const [what, args, re] of cases) {
    it(what, async () => {
      const r = await runCli(args);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')[0]).toMatch(re);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack traces
    });
  }

  it('prints help for every command', async () => {
    for (const cmd of ['inspect', 'copy']) {
      const r = await runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: bkcache/);
    }
  });
});
