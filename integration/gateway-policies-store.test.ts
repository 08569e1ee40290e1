// The gateway's view of one upstream repository as a ContentStore (what the
// policies' merge and repair read and write through) passes the store
// conformance suite in front of a real docker-registry.
import { UpstreamRepoStore } from '../src/gateway/policies/store.js';
import { RegistryUpstream } from '../src/gateway/upstream/registry.js';
import { describeStoreConformance } from '../test/store/conformance.js';
import { startRegistry } from './harness/registry.js';

describeStoreConformance('gateway upstream repository (docker-registry)', async () => {
  const reg = await startRegistry();
  const upstream = new RegistryUpstream(reg.host, 'pol', { hosts: { [reg.host]: { insecure: true } }, dockerConfig: '/nonexistent-bkcache-docker-config' });
  return {
    store: new UpstreamRepoStore(upstream, 'cache/app'),
    async cleanup() {
      await upstream.close();
      await reg.stop();
    },
  };
});
