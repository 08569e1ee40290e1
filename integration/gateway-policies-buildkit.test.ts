// Gateway policies with a real BuildKit (Debian's dockerd 20.10) importing
// through the gateway:
// - two writers push the caches of two builds (one file differs) to one tag
//   at the same time, through two daemons; `docker build --cache-from` that
//   tag gives BOTH builds every step CACHED: neither writer's records were lost;
// - a cache whose last layer the registry lost is served repaired: the build
//   succeeds, the kept steps CACHED and the lost one rebuilt, no error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJson } from './harness/cli.js';
import { assertAllCached, CHANGED_FILE_STEPS, changedFileContext, pushChangedFileApps, stepsInOrder, startDockerd, type Dockerd } from './harness/dockerd.js';
import { insecureHosts, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

let reg: StartedRegistry;
const gws: GatewayProcess[] = [];
let dockerd: Dockerd;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-gpb-'));
const regRef = (r: string) => `type=registry,ref=${reg.host}/${r},registry.insecure=true`;
const gwRef = (g: GatewayProcess, r: string) => `type=registry,ref=${g.host}/${r},registry.insecure=true,image-manifest=false`;

const appContext = (content: string) => changedFileContext(tmp, `${reg.host}/base:1`, content);


beforeAll(async () => {
  reg = await startRegistry();
  const cfg = path.join(tmp, 'cfg.yaml');
  writeFileSync(
    cfg,
    insecureHosts(reg.host) +
      `gateway:
  listen: tcp://127.0.0.1:0
  upstream: ${reg.host}/gw
  policies:
    - { repositories: "cache/**", merge: true, repairOnRead: true }
    - { repositories: "repair/**", repairOnRead: true }
`,
  );
  gws.push(await startGatewayFromConfig(cfg), await startGatewayFromConfig(cfg));
  dockerd = await startDockerd({ insecureRegistries: [reg.host, ...gws.map((g) => g.host)] });
  // Two builds of one Dockerfile, a.txt changed between them, each pushed with its inline cache.
  await pushChangedFileApps(dockerd, tmp, reg.host);
}, 600_000);

afterAll(async () => {
  await dockerd?.stop();
  for (const g of gws) {
    await g.d.stop();
    g.d.cleanup();
  }
  await reg?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('gateway policies with a real BuildKit', () => {
  it('two writers at once to one merged tag: BuildKit finds both builds, every step CACHED', async () => {
    // The two builds' caches, pushed at the same time to one tag through two daemons (BuildKit's index shape).
    await Promise.all([
      runJson(['copy', '--format', 'json', '--import-cache', regRef('app:v1'), '--export-cache', gwRef(gws[0]!, 'cache/app:main')]),
      runJson(['copy', '--format', 'json', '--import-cache', regRef('app:v2'), '--export-cache', gwRef(gws[1]!, 'cache/app:main')]),
    ]);
    for (const [content, g] of [['one\n', gws[1]!], ['two\n', gws[0]!]] as const) {
      await dockerd.pruneBuilderCache();
      const progress = await dockerd.build(appContext(content), { cacheFrom: [`${g.host}/cache/app:main`] });
      expect(assertAllCached(progress).sort((x, y) => x.step - y.step).map((x) => x.instruction)).toEqual(CHANGED_FILE_STEPS);
    }
  }, 600_000);

  it('a cache whose last layer the registry lost: served repaired, the build succeeds with the kept steps CACHED', async () => {
    const out = await runJson<{ manifest: { digest: string } }>(['copy', '--format', 'json', '--import-cache', regRef('app:v1'), '--export-cache', gwRef(gws[0]!, 'repair/app:main')]);
    const idx = await (await fetch(`${reg.url}/v2/gw/repair/app/manifests/${out.manifest.digest}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json();
    const cfgDesc = (idx.manifests as { digest: string; mediaType: string }[]).find((m) => m.mediaType.includes('cacheconfig'))!;
    const config = await (await fetch(`${reg.url}/v2/gw/repair/app/blobs/${cfgDesc.digest}`)).json();
    // The longest chain's top layer: only the last step's result names it.
    const chains = (config.records as { layers?: { layer: number }[] }[]).flatMap((r) => r.layers ?? []).map((l) => l.layer);
    // BuildKit omits `parent` when it is 0 (Go's omitempty), so absent means layer 0; -1 is no parent.
    const parentOf = (i: number): number => config.layers[i].parent ?? 0;
    const depth = (i: number): number => (parentOf(i) >= 0 ? 1 + depth(parentOf(i)) : 1);
    const top = chains.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    const victim = config.layers[top].blob as string;
    expect((await fetch(`${reg.url}/v2/gw/repair/app/blobs/${victim}`, { method: 'DELETE' })).status).toBe(202);

    await dockerd.pruneBuilderCache();
    const progress = await dockerd.build(appContext('one\n'), { cacheFrom: [`${gws[1]!.host}/repair/app:main`] });
    expect(progress).not.toMatch(/ERROR/);
    const s = stepsInOrder(progress);
    expect(s.map((x) => x.instruction)).toEqual(CHANGED_FILE_STEPS);
    // The dropped step is a clean miss: it runs; everything kept is CACHED.
    expect(s.map((x) => x.cached), progress).toEqual([true, true, false]);
  }, 600_000);
});
