// One measured client in its own process: pushes or pulls N layers of M MiB
// (deterministic bytes from a seed) to a registry or to the gateway, with the
// project's registry store, 4 blobs in flight; prints ms, bytes and the CPU
// time this process spent on the transfer (cpuMs, user + system).
//   push HOST/REPO LAYERS MIB SEED
//   pull HOST/REPO LAYERS MIB SEED
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { verified } from '../../src/store/content.js';
import { RegistryStore } from '../../src/store/registry/index.js';

const BLOCK = 16 << 20;

/** A block of pseudo-random bytes: sha256 in counter mode. */
function block(seed: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(b, i);
  return b;
}

/** Layer i: an 8-byte header naming it, then the block repeated. */
function open(base: Buffer, i: number, size: number): Readable {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(i, 0);
  let left = size;
  let first = true;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const part = first ? Buffer.concat([head, base.subarray(0, Math.min(BLOCK, left) - 8)]) : base.subarray(0, Math.min(BLOCK, left));
      first = false;
      left -= part.length;
      this.push(part);
    },
  });
}

async function describe(base: Buffer, i: number, size: number): Promise<Descriptor> {
  const h = createHash('sha256');
  for await (const c of open(base, i, size)) h.update(c as Buffer);
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${h.digest('hex')}`, size };
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function main(): Promise<Record<string, number>> {
  const [mode, ref, layersS, mibS, seedS] = process.argv.slice(2);
  const layers = Number(layersS);
  const size = Number(mibS) << 20;
  const base = block(Number(seedS));
  const descs: Descriptor[] = [];
  for (let i = 0; i < layers; i++) descs.push(await describe(base, i, size));
  const store = new RegistryStore(ref!, { insecure: true, dockerConfig: false });
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  if (mode === 'push') {
    await pool(descs.map((d, i) => [d, i] as const), 4, async ([d, i]) => {
      const r = await store.push(d, () => open(base, i, size));
      bytes += r.bytes;
    });
  } else if (mode === 'pull') {
    await pool(descs, 4, async (d) => {
      for await (const c of verified(await store.fetch(d), d)) bytes += (c as Buffer).length;
    });
  } else throw new Error(`unknown mode ${mode}`);
  const ms = Math.round(performance.now() - t0);
  const cpu = process.cpuUsage(cpu0);
  await store.close();
  return { ms, bytes, cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
}

main().then(
  (r) => console.log(JSON.stringify(r)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
