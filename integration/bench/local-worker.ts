// One side of the local-store bench (local.ts), in its own process so the
// verification memo of src/store/local/blob-file.ts starts empty:
//   write DIR N MiB     pushes N random blobs of MiB each, prints {ms, descs}
//   reexport DIR FILE   pushes the same descriptors again (all present), prints {ms, outcomes}
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { digestBytes } from '../../src/oci/digest.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local/index.js';

const [mode, dir, a, b] = process.argv.slice(2);
const store = new LocalStore(dir!, { create: true });
if (mode === 'write') {
  const descs: Descriptor[] = [];
  let ms = 0;
  for (let i = 0; i < Number(a); i++) {
    const bytes = randomFillSync(Buffer.alloc(Number(b) << 20));
    const d = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestBytes(bytes), size: bytes.length };
    const t = performance.now();
    await store.push(d, Readable.from([bytes]));
    ms += performance.now() - t;
    descs.push(d);
  }
  console.log(JSON.stringify({ ms: Math.round(ms), descs }));
} else {
  const descs = JSON.parse(readFileSync(a!, 'utf8')) as Descriptor[];
  const t = performance.now();
  const outcomes = [];
  // Content that is never read when the store proves the blob is there.
  for (const d of descs) outcomes.push((await store.push(d, new Readable({ read() { this.destroy(new Error('read')); } }))).outcome);
  console.log(JSON.stringify({ ms: Math.round(performance.now() - t), outcomes }));
}
