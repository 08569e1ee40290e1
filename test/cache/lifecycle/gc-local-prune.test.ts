// gc of a local layout removes index.json entries, then prunes. When prune
// refuses the layout (another entry it cannot walk: a tag naming a manifest
// that is gone), the entries are removed already: gc must say so, not fail
// with prune's "nothing was deleted" and lose its report.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { gcRepository } from '../../../src/cache/lifecycle/gc.js';
import { parseCacheSpec } from '../../../src/cache/spec.js';
import { LocalStore } from '../../../src/store/local/index.js';
import { runCli } from '../../../integration/harness/cli.js';
import { tempDir } from '../../tmp.js';
import { chainGraph, sha, writeLocal } from './helpers.js';

/** A layout with an expired cache (tag "old"), a recent one ("new"), and a tag naming a manifest that is not there ("gone"). */
async function layout(): Promise<string> {
  const dir = tempDir('bkcache-gcp-');
  const old = chainGraph(2, { prefix: 'old', start: new Date('2020-01-01T00:00:00Z') });
  await writeLocal(old.graph, old.blobs, dir, 'old');
  const recent = chainGraph(2, { prefix: 'new', start: new Date(Date.now() - 3_600_000) });
  await writeLocal(recent.graph, recent.blobs, dir, 'new');
  const file = path.join(dir, 'index.json');
  const index = JSON.parse(readFileSync(file, 'utf8'));
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha('a manifest nobody wrote'),
    size: 500,
    annotations: { 'org.opencontainers.image.ref.name': 'gone' },
  });
  writeFileSync(file, JSON.stringify(index));
  return dir;
}

const tags = async (dir: string) => (await new LocalStore(dir).tags()).map((t) => t.tag).sort();

describe('gc of a local layout that prune refuses', () => {
  it('removes the expired entries and reports that no blob was pruned, and why', async () => {
    const dir = await layout();
    const r = await gcRepository(parseCacheSpec(`type=local,src=${dir}`), {}, { olderThan: 86_400_000 });
    expect(r.deleted.map((t) => t.tag)).toEqual(['old']);
    expect(r.kept.map((t) => [t.tag, t.reason])).toEqual([['gone', 'unreadable'], ['new', 'recent']]);
    expect(r.prune).toBeUndefined();
    expect(r.pruneRefused).toMatch(/tag "gone".*missing/);
    expect(r.note).toMatch(/removed from index\.json, but no blob was pruned/);
    expect(await tags(dir)).toEqual(['gone', 'new']);
  });

  it('the CLI exits 0 with its report: text says so, JSON is one object and the warning goes to stderr', async () => {
    const text = await runCli(['gc', '--repository', `type=local,src=${await layout()}`, '--older-than', '1d']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^deleted old /m);
    expect(text.stdout).toMatch(/^note: the entries were removed from index\.json, but no blob was pruned: /m);
    const dir = await layout();
    const json = await runCli(['gc', '--repository', `type=local,src=${dir}`, '--older-than', '1d', '--format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ deleted: ['old'], kept: ['gone', 'new'] });
    expect(json.stderr.trim().split('\n')).toHaveLength(1);
    expect(json.stderr).toMatch(/^warning: .*no blob was pruned/);
    expect(await tags(dir)).toEqual(['gone', 'new']);
  });

  it('when prune runs, --format json prints exactly one JSON object and nothing on stderr', async () => {
    const dir = tempDir('bkcache-gcp-');
    const old = chainGraph(2, { prefix: 'old', start: new Date('2020-01-01T00:00:00Z') });
    await writeLocal(old.graph, old.blobs, dir, 'old');
    const r = await runCli(['gc', '--repository', `type=local,src=${dir}`, '--older-than', '1d', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout)).toEqual({ deleted: ['old'], kept: [] });
  });
});
