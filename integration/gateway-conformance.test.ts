// The store conformance suite (test/store/conformance.ts) against the
// gateway as a type=registry backend: in front of a real docker-registry and
// in front of the embedded store, both through a real `bkcache serve`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryStore } from '../src/store/registry/index.js';
import { describeStoreConformance } from '../test/store/conformance.js';
import { startGateway, insecureHosts } from './harness/gateway.js';
import { startRegistry } from './harness/registry.js';

let n = 0;

describeStoreConformance('gateway in front of docker-registry', async () => {
  const reg = await startRegistry();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-gw-conf-'));
  writeFileSync(path.join(dir, 'cfg.yaml'), insecureHosts(reg.host));
  const gw = await startGateway({ upstream: `${reg.host}/prefix`, args: ['--config', path.join(dir, 'cfg.yaml')] });
  const store = new RegistryStore({ registry: gw.host, repository: `conf/app${n++}` }, { insecure: true, dockerConfig: false, retry: { maxAttempts: 2 } });
  return {
    store,
    async cleanup() {
      await store.close();
      await gw.d.stop();
      gw.d.cleanup();
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describeStoreConformance('gateway in front of the embedded store', async () => {
  const gw = await startGateway({ upstream: 'local' });
  const store = new RegistryStore({ registry: gw.host, repository: `conf/app${n++}` }, { insecure: true, dockerConfig: false, retry: { maxAttempts: 2 } });
  return {
    store,
    async cleanup() {
      await store.close();
      await gw.d.stop();
      gw.d.cleanup();
    },
  };
});

describeStoreConformance('gateway in front of docker-registry, chunked uploads', async () => {
  const reg = await startRegistry();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-gw-conf-'));
  writeFileSync(path.join(dir, 'cfg.yaml'), insecureHosts(reg.host));
  const gw = await startGateway({ upstream: reg.host, args: ['--config', path.join(dir, 'cfg.yaml')] });
  const store = new RegistryStore(
    { registry: gw.host, repository: `conf/chunked${n++}` },
    { hosts: { [gw.host]: { insecure: true, chunkSize: 5 << 20 } }, dockerConfig: false, retry: { maxAttempts: 2 } },
  );
  return {
    store,
    async cleanup() {
      await store.close();
      await gw.d.stop();
      gw.d.cleanup();
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
