// The store conformance suite (test/store/conformance.ts) against the
// gateway as a type=registry backend: in front of a real docker-registry and
// in front of the embedded store, both through a real `bkcache serve`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { RegistryStore } from '../src/store/registry/index.js';
import { describeStoreConformance, type StoreUnderTest } from '../test/store/conformance.js';
import { tempDir } from '../test/tmp.js';
import { startGateway, insecureHosts } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

let n = 0;

/** A registry store on a fresh gateway in front of `upstream`: a new docker-registry (under `prefix`) or the embedded store. */
async function throughGateway(upstream: 'registry' | 'local', opts: { prefix?: string; chunkSize?: number } = {}): Promise<StoreUnderTest> {
  let reg: StartedRegistry | undefined;
  const args: string[] = [];
  let target = 'local';
  if (upstream === 'registry') {
    reg = await startRegistry();
    const cfg = path.join(tempDir('bkcache-gw-conf-'), 'cfg.yaml');
    writeFileSync(cfg, insecureHosts(reg.host));
    args.push('--config', cfg);
    target = opts.prefix ? `${reg.host}/${opts.prefix}` : reg.host;
  }
  const gw = await startGateway({ upstream: target, args });
  const store = new RegistryStore(
    { registry: gw.host, repository: `conf/app${n++}` },
    { hosts: { [gw.host]: { insecure: true, chunkSize: opts.chunkSize } }, dockerConfig: false, retry: { maxAttempts: 2 } },
  );
  return {
    store,
    async cleanup() {
      await store.close();
      await gw.d.stop();
      gw.d.cleanup();
      await reg?.stop();
    },
  };
}

describeStoreConformance('gateway in front of docker-registry', () => throughGateway('registry', { prefix: 'prefix' }));
describeStoreConformance('gateway in front of the embedded store', () => throughGateway('local'));
describeStoreConformance('gateway in front of docker-registry, chunked uploads', () => throughGateway('registry', { chunkSize: 5 << 20 }));
describeStoreConformance('gateway in front of the embedded store, chunked uploads', () => throughGateway('local', { chunkSize: 5 << 20 }));
