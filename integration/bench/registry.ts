// Benchmark: a 1 GiB cache (8 random layers) exported to a real registry and
// imported back through our store, against `skopeo copy` of the same blobs
// as an OCI layout into a second, fresh registry; and sha256 throughput of
// our hasher against `openssl speed -evp sha256`.
// Targets: export wall time <= 1.0x skopeo's, peak RSS < 200 MiB, sha256 >= 80% of openssl.
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { CacheGraph } from '../../src/cache/graph.js';
import { exportGraph } from '../../src/cache/operations.js';
import { parseCacheSpec } from '../../src/cache/spec.js';
import { encodeManifest } from '../../src/oci/manifest.js';
import { digestBytes, newHasher } from '../../src/oci/digest.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local/index.js';
import { startRegistry } from '../harness/registry.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const LAYERS = 8;
const LAYER_BYTES = 128 << 20;

function worker(args: string[]): { ms: number; bytes: number; peakRssMiB: number } {
  const out = execFileSync(process.execPath, [path.join(here, 'registry-worker.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/** Writes random layer files; returns their descriptors (digest computed while writing). */
async function makeLayers(dir: string): Promise<{ desc: Descriptor; file: string }[]> {
  const out = [];
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < LAYERS; i++) {
    const file = path.join(dir, `layer-${i}`);
    const ws = createWriteStream(file);
    const h = newHasher();
    for (let n = 0; n < LAYER_BYTES; n += chunk.length) {
      randomFillSync(chunk);
      h.update(chunk);
      if (!ws.write(chunk)) await once(ws, 'drain');
    }
    ws.end();
    await once(ws, 'finish');
    const digest = h.digest();
    out.push({ file, desc: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: LAYER_BYTES, annotations: { 'containerd.io/uncompressed': digestBytes(digest) } } });
  }
  return out;
}

export async function registryBench(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'bkcache-bench-'));
  const regA = await startRegistry();
  const regB = await startRegistry();
  try {
    const layers = await makeLayers(work);
    // A bkcache-shaped cache in a local layout: one record per layer chain.
    const cacheDir = path.join(work, 'cache');
    const files = new Map(layers.map((l) => [l.desc.digest, l.file]));
    const g = new CacheGraph();
    layers.forEach((_, i) => g.add(digestBytes(`rec-${i}`)).addResult('2026-01-01T00:00:00Z', layers.slice(0, i + 1).map((l) => l.desc)));
    const { createReadStream } = await import('node:fs');
    await exportGraph(g, { fetch: async (d) => createReadStream(files.get(d.digest)!) }, parseCacheSpec(`type=local,dest=${cacheDir}`));
    // The same blobs as a plain OCI image layout for skopeo.
    const imgDir = path.join(work, 'image');
    const img = new LocalStore(imgDir, { create: true });
    for (const l of layers) await img.push(l.desc, createReadStream(l.file));
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.desc.annotations!['containerd.io/uncompressed']) } }));
    const cfgDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestBytes(cfg), size: cfg.length };
    await img.push(cfgDesc, cfg);
    const mf = Buffer.from(encodeManifest({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfgDesc, layers: layers.map((l) => l.desc) }));
    const mfDesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestBytes(mf), size: mf.length };
    await img.push(mfDesc, mf);
    await img.tag(mfDesc, 'latest');

    const t0 = performance.now();
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${imgDir}:latest`, `docker://${regB.host}/bench/skopeo:latest`]);
    const skopeoMs = Math.round(performance.now() - t0);
    const exp = worker(['export', cacheDir, `${regA.host}/bench/cache:latest`]);
    const imp = worker(['import', `${regA.host}/bench/cache:latest`]);
    const total = LAYERS * LAYER_BYTES;
    const mbps = (bytes: number, ms: number) => ((bytes / 1e6) / (ms / 1000)).toFixed(0);
    console.log('registry: 1 GiB cache, 8 layers (targets: export <= 1.0x skopeo, peak RSS < 200 MiB)');
    console.log(`  skopeo copy (OCI layout -> registry)  ${skopeoMs} ms  ${mbps(total, skopeoMs)} MB/s`);
    console.log(`  bkcache export                        ${exp.ms} ms  ${mbps(exp.bytes, exp.ms)} MB/s  peak RSS ${exp.peakRssMiB} MiB  ratio ${(exp.ms / skopeoMs).toFixed(2)}x  ${exp.ms <= skopeoMs && exp.peakRssMiB < 200 ? 'target met' : 'TARGET MISSED'}`);
    console.log(`  bkcache import + fetch every blob     ${imp.ms} ms  ${mbps(imp.bytes, imp.ms)} MB/s  peak RSS ${imp.peakRssMiB} MiB  ${imp.peakRssMiB < 200 ? 'target met' : 'TARGET MISSED'}`);

    const hash = worker(['hash']);
    const hashFile = worker(['hash-file', layers[0]!.file]);
    const ssl = execFileSync('openssl', ['speed', '-evp', 'sha256', '-bytes', String(1 << 20), '-seconds', '3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const sslKBs = Number(/sha256\s+([\d.]+)k/.exec(ssl)?.[1] ?? 'NaN');
    const sslMBs = (sslKBs * 1000) / 1e6;
    const ours = hash.bytes / 1e6 / (hash.ms / 1000);
    const fromFile = hashFile.bytes / 1e6 / (hashFile.ms / 1000);
    console.log('sha256 (target: >= 80% of openssl speed -evp sha256)');
    console.log(`  openssl ${sslMBs.toFixed(0)} MB/s; bkcache hasher ${ours.toFixed(0)} MB/s: ${((ours / sslMBs) * 100).toFixed(0)}%  ${ours >= 0.8 * sslMBs ? 'target met' : 'TARGET MISSED'}`);
    console.log(`  (hashing while streaming a file from disk: ${fromFile.toFixed(0)} MB/s, bounded by the reads)`);
    writeFileSync(path.join(work, 'done'), '');
  } finally {
    await regA.stop();
    await regB.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
