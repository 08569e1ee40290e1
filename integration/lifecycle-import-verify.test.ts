// The gRPC Import's verify_blobs when the registry changes between the
// import's read and the check: the solver must get a graph whose every
// result's layers were checked, whatever happened to the manifest meanwhile
// (a gc deleting it, a push moving the tag).
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { copyCache } from '../src/cache/operations.js';
import { parseCacheSpec } from '../src/cache/spec.js';
import { chainGraph, writeLocal } from '../test/cache/lifecycle/helpers.js';
import { startDaemon } from './harness/daemon.js';
import { faultyRegistry } from './harness/faulty-registry.js';

const env = faultyRegistry({});

describe('Import with verify_blobs on a registry that changes meanwhile', () => {
  it('the manifest deleted and a layer lost after the import read them: the result naming that layer is dropped', async () => {
    const repo = 'ivr/gone';
    const c = chainGraph(3, { prefix: 'ivr-gone' });
    const pushed = await copyCache([parseCacheSpec(await writeLocal(c.graph, c.blobs))], parseCacheSpec(`type=registry,ref=${env.reg.host}/${repo}:latest,registry.insecure=true`));
    const manifest = pushed.manifest!.digest;
    const top = c.nodes[2]!;
    const victim = top.result!.layers.at(-1)!.digest;
    // Once the daemon has read the manifest and asks for the config, a gc deletes the manifest and the registry loses a layer.
    env.proxy.reset();
    env.proxy.rules.push({
      name: 'deleted meanwhile',
      times: 1,
      match: (r) => r.method === 'GET' && r.path.startsWith(`/v2/${repo}/blobs/`),
      action: {
        rewrite: async () => {
          expect((await fetch(`${env.reg.url}/v2/${repo}/manifests/${manifest}`, { method: 'DELETE' })).status).toBe(202);
          expect((await fetch(`${env.reg.url}/v2/${repo}/blobs/${victim}`, { method: 'DELETE' })).status).toBe(202);
        },
      },
    });
    const d = await startDaemon({ env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } });
    const client = connect(d.addr);
    try {
      const checked = await client.import([`type=registry,ref=${env.proxy.host}/${repo}:latest,registry.insecure=true`], { verifyBlobs: true });
      expect(env.proxy.log.some((x) => x.fault === 'deleted meanwhile')).toBe(true);
      expect(checked.hit?.index).toBe(0);
      expect(checked.dropped).toEqual([top.digest]);
      expect(checked.graph.nodes.some((n) => n.result?.layers.some((l) => l.digest === victim))).toBe(false);
      expect(checked.graph.nodes.filter((n) => n.result).length).toBe(2);
    } finally {
      client.close();
      await d.stop();
      d.cleanup();
    }
  });
});
