// One Export through the client library, in its own process (so every run
// starts from the same cold client, like a solver process would):
//   stream        ADDR LAYERS_JSON CS_DIR [CHUNK_BYTES]   the client reads CS_DIR (the daemon is told it cannot) and streams every blob
//   stream-open   ADDR LAYERS_JSON CS_DIR [CHUNK_BYTES]   the client streams fs read streams returned by open()
//   content-store ADDR LAYERS_JSON CS_DIR                 the daemon reads CS_DIR/blobs/sha256/<hex> itself
// LAYERS_JSON holds the layer descriptors, base first; the graph is one
// record per layer chain (record i has layers 0..i). The target is the
// daemon's embedded store (`type=local`). Prints one JSON line.
import { createReadStream, readFileSync } from 'node:fs';
import { CacheGraph, connect } from '../../src/client/index.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes } from '../../src/oci/digest.js';
import { contentStorePath } from '../../src/store/local/layout.js';

async function main(): Promise<Record<string, number>> {
  const [mode, addr, layersJson, csDir, chunk] = process.argv.slice(2);
  const layers = JSON.parse(readFileSync(layersJson!, 'utf8')) as Descriptor[];
  const g = new CacheGraph();
  layers.forEach((_, i) => g.add(digestBytes(`grpc-bench-rec-${i}`)).addResult('2026-01-01T00:00:00Z', layers.slice(0, i + 1)));
  const client = connect(addr);
  // Connect first, so the figure is the export and not the dial.
  await client.waitForReady(10_000);
  const blobs =
    mode === 'stream'
      ? { contentStoreDir: csDir!, daemonCanRead: false }
      : mode === 'stream-open'
        ? { open: (d: Descriptor) => createReadStream(contentStorePath(csDir!, d.digest), { highWaterMark: 1 << 20 }) }
        : mode === 'content-store'
          ? { contentStoreDir: csDir! }
          : undefined;
  if (!blobs) throw new Error(`unknown mode ${mode}`);
  const t0 = performance.now();
  const res = await client.export('type=local', g, blobs, chunk ? { chunkBytes: Number(chunk) } : {});
  const ms = performance.now() - t0;
  client.close();
  if (!res.manifest) throw new Error('the export wrote no manifest');
  return {
    ms: Math.round(ms),
    uploadedBytes: res.stats.uploadedBytes,
    receivedBytes: res.stats.receivedBytes,
    sentBytes: res.sentBytes,
    requested: res.requested.length,
    clientPeakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

main().then(
  (r) => console.log(JSON.stringify(r)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
