// One measured operation in its own process, so its peak RSS is its own.
//   export SRC_DIR REF        copy a local cache into a registry (plain HTTP)
//   import REF                resolve, read the cache, and fetch every blob
//   hash                      sha256 of 512 MiB in memory through our hasher (as openssl speed measures)
//   hash-file FILE            sha256 of a file streamed from disk through our hasher
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyCache } from '../../src/cache/operations.js';
import { loadCache } from '../../src/cache/import.js';
import { parseCacheSpec } from '../../src/cache/spec.js';
import { newHasher } from '../../src/oci/digest.js';
import { verified } from '../../src/store/content.js';
import { RegistryStore } from '../../src/store/registry/index.js';

async function main(): Promise<Record<string, number>> {
  const [mode, a, b] = process.argv.slice(2);
  const t0 = performance.now();
  let bytes = 0;
  if (mode === 'export') {
    const res = await copyCache([parseCacheSpec(`type=local,src=${a}`)], parseCacheSpec(`type=registry,ref=${b},registry.insecure=true`));
    bytes = res.stats.uploadedBytes;
  } else if (mode === 'import') {
    const store = new RegistryStore(a!, { insecure: true });
    const loaded = await loadCache(store, await store.resolve(a!.split(':').at(-1)!));
    for (const d of loaded.parts[0]!.provider.values()) {
      for await (const chunk of verified(await store.fetch(d), d)) bytes += (chunk as Buffer).length;
    }
    await store.close();
  } else if (mode === 'hash') {
    const h = newHasher('sha256');
    const chunk = randomBytes(1 << 20);
    for (; bytes < 512 << 20; bytes += chunk.length) h.update(chunk);
    h.digest();
  } else if (mode === 'hash-file') {
    const h = newHasher('sha256');
    for await (const chunk of createReadStream(a!, { highWaterMark: 1 << 20 })) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    h.digest();
  } else throw new Error(`unknown mode ${mode}`);
  return { ms: Math.round(performance.now() - t0), bytes, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
}

main().then(
  (r) => console.log(JSON.stringify(r)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
