// The gateway's view of one upstream repository as a ContentStore (what the
// merge and the repair read and write through) passes the store conformance
// suite, over the embedded store.
import { rmSync } from 'node:fs';
import { UpstreamRepoStore } from '../../src/gateway/policies/store.js';
import { LocalUpstream } from '../../src/gateway/upstream/local.js';
import { describeStoreConformance } from '../store/conformance.js';
import { tempDir } from '../tmp.js';

describeStoreConformance('gateway upstream repository (local)', async () => {
  const root = tempDir('bkcache-upstream-store-');
  const upstream = new LocalUpstream(root);
  return {
    store: new UpstreamRepoStore(upstream, 'cache/app'),
    cleanup: async () => {
      await upstream.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
});
