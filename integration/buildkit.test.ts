// A real BuildKit (the one inside Debian's dockerd 20.10) writes inline
// caches, bkcache turns them into registry caches, and the same BuildKit
// consumes what bkcache wrote: after `docker builder prune -af` and with the
// images removed, a build with `--cache-from <bkcache's ref>` must print
// CACHED for every step. This BuildKit predates the image-manifest cache
// shape; it is the real consumer of the index shape old builders still read.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { runJson } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { allCached, assertAllCached, buildSteps, pushBusyboxBase, startDockerd, stepsContext, type Dockerd } from './harness/dockerd.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';

let reg: StartedRegistry;
let dockerd: Dockerd;
let base: string;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-buildkit-'));

/** A build context whose steps BuildKit can only skip with a cache: RUN, COPY, RUN. */
function context(name: string): string {
  return stepsContext(path.join(tmp, name), name, base);
}

/** Builds `name` with an inline cache and pushes it; returns the image ref. */
async function inlineImage(name: string): Promise<string> {
  const ref = `${reg.host}/app/${name}:inline`;
  const progress = await dockerd.build(context(name), { tags: [ref], buildArgs: { BUILDKIT_INLINE_CACHE: '1' }, push: true });
  // A first build really runs its steps (else the later CACHED proves nothing).
  expect(buildSteps(progress).filter((s) => s.cached)).toEqual([]);
  return ref;
}

/** The manifest as the registry stores it, by plain HTTP. */
async function registryManifest(repoTag: string): Promise<{ mediaType: string; manifests: { mediaType: string; digest: string; annotations?: Record<string, string> }[] }> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
  expect(res.status).toBe(200);
  const doc = JSON.parse(await res.text());
  expect(doc.mediaType).toBe(res.headers.get('content-type'));
  return doc;
}

/** After forgetting everything local, a build from the cache at `cacheRef` runs no step. */
async function expectFullyCached(name: string, cacheRef: string): Promise<void> {
  await dockerd.pruneBuilderCache();
  const progress = await dockerd.build(context(name), { cacheFrom: [cacheRef] });
  const steps = assertAllCached(progress);
  expect(steps.map((s) => s.instruction).sort()).toEqual(
    [`RUN echo ${name} > /step1`, 'COPY input.txt /input.txt', `RUN cat /step1 /input.txt > /step2 && echo ${name}-done >> /step2`].sort(),
  );
}

beforeAll(async () => {
  reg = await startRegistry();
  dockerd = await startDockerd({ insecureRegistries: [reg.host] });
  base = await pushBusyboxBase(dockerd, `${reg.host}/base/busybox:1`);
}, 300_000);

afterAll(async () => {
  await dockerd?.stop();
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('a real BuildKit (dockerd 20.10) consumes the caches bkcache writes', () => {
  it('without a cache, a pruned builder runs every step (the control)', async () => {
    await inlineImage('control');
    await dockerd.pruneBuilderCache();
    const progress = await dockerd.build(context('control'));
    const steps = buildSteps(progress);
    expect(steps.length).toBe(3);
    expect(steps.some((s) => s.cached)).toBe(false);
    expect(allCached(progress)).toBe(false);
    expect(() => assertAllCached(progress)).toThrow(/these ran: \[2\/4\] RUN echo control/);
  }, 300_000);

  for (const oci of [true, false]) {
    it(`inline cache -> index cache with ${oci ? 'OCI' : 'Docker'} media types: every step CACHED`, async () => {
      const name = oci ? 'inline-oci' : 'inline-docker';
      const image = await inlineImage(name);
      const cache = `${reg.host}/cache/${name}:index`;
      const out = await runJson<{ manifest: { mediaType: string; digest: string } }>([
        'copy',
        '--import-cache',
        `type=registry,ref=${image},registry.insecure=true`,
        '--export-cache',
        `type=registry,ref=${cache},registry.insecure=true,image-manifest=false,oci-mediatypes=${oci}`,
        '--format',
        'json',
        '--progress',
        'quiet',
      ]);
      // What the registry received: an index of the layers with the cache config last.
      const doc = await registryManifest(`cache/${name}:index`);
      expect(doc.mediaType).toBe(oci ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json');
      expect(out.manifest.mediaType).toBe(doc.mediaType);
      expect(doc.manifests.at(-1)!.mediaType).toBe(CACHE_CONFIG);
      const layers = doc.manifests.slice(0, -1);
      expect(layers.length).toBeGreaterThanOrEqual(3); // busybox, RUN, COPY, RUN
      for (const l of layers) {
        expect(l.mediaType).toBe(oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.diff.tar.gzip');
        expect(l.annotations?.['containerd.io/uncompressed']).toMatch(/^sha256:[0-9a-f]{64}$/);
      }
      await expectFullyCached(name, cache);
    }, 300_000);
  }

  it('a merge of two caches from two Dockerfiles: both builds fully cached from the merged ref', async () => {
    const [a, b] = [await inlineImage('merge-a'), await inlineImage('merge-b')];
    const merged = `${reg.host}/cache/merged:index`;
    await runJson([
      'copy',
      '--import-cache',
      `type=registry,ref=${a},registry.insecure=true`,
      '--import-cache',
      `type=registry,ref=${b},registry.insecure=true`,
      '--export-cache',
      `type=registry,ref=${merged},registry.insecure=true,image-manifest=false`,
      '--format',
      'json',
      '--progress',
      'quiet',
    ]);
    const doc = await registryManifest('cache/merged:index');
    expect(doc.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(doc.manifests.at(-1)!.mediaType).toBe(CACHE_CONFIG);
    await expectFullyCached('merge-a', merged);
    await expectFullyCached('merge-b', merged);
  }, 600_000);

  describe('through the gRPC sidecar', () => {
    let daemon: DaemonProcess;
    beforeAll(async () => {
      daemon = await startDaemon();
    });
    afterAll(async () => {
      await daemon?.stop();
      daemon?.cleanup();
    });

    it('client import -> export with blobs from fetchBlob: every step CACHED', async () => {
      const image = await inlineImage('sidecar');
      const source = `type=registry,ref=${image},registry.insecure=true`;
      // Another repository, so the daemon has none of the blobs and must ask for every one.
      const cache = `${reg.host}/cache/sidecar:index`;
      const client = connect(daemon.addr);
      try {
        const imported = await client.import([source]);
        expect(imported.hit?.kind).toBe('inline');
        const fetched: string[] = [];
        const res = await client.export(`type=registry,ref=${cache},registry.insecure=true,image-manifest=false`, imported.graph, {
          open: (d) => {
            fetched.push(d.digest);
            return client.fetchBlob(source, d) as Readable;
          },
        });
        expect(res.manifest?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
        expect(res.requested.length).toBeGreaterThan(0);
        expect(fetched.sort()).toEqual([...res.requested].sort());
        expect(res.stats.uploaded).toBe(res.requested.length);
        const doc = await registryManifest('cache/sidecar:index');
        expect(doc.manifests.at(-1)!.mediaType).toBe(CACHE_CONFIG);
        expect(doc.manifests.slice(0, -1).map((m) => m.digest).sort()).toEqual(
          imported.graph.nodes.flatMap((n) => n.result?.layers ?? []).map((l) => l.digest).filter((d, i, all) => all.indexOf(d) === i).sort(),
        );
      } finally {
        client.close();
      }
      await expectFullyCached('sidecar', cache);
    }, 300_000);
  });
});
