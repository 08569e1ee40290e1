// A synthetic solver graph with real random blobs, as a build solver would
// hand to the client library: several stages, cross links with selectors,
// layer chains that share base layers, and a random: record that must drop.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CacheGraph } from '../../src/cache/graph.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { digestBytes } from '../../src/oci/digest.js';

export interface Synthetic {
  graph: CacheGraph;
  /** Layer blobs by digest. */
  blobs: Map<string, Buffer>;
  layers: Descriptor[];
  /** A blob provider serving `blobs`, counting what was opened. */
  provider: { open(d: Descriptor): Readable; opened: string[] };
}

function layer(data: Buffer, i: number): Descriptor {
  return {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: digestBytes(data),
    size: data.length,
    annotations: {
      'containerd.io/uncompressed': digestBytes(`uncompressed-${i}-${data.length}`),
      'buildkit/createdat': '2024-05-01T10:00:00Z',
    },
  };
}

/** `sizes`: byte sizes of the first layers; several exceed a 1 MiB chunk so blobs travel in pieces. */
export function synthetic(sizes = [300_000, 2_500_000, 70_000, 1_200_000, 5_000, 900_000], seed = 'g'): Synthetic {
  const blobs = new Map<string, Buffer>();
  // The graph below uses six layers; sizes not given are small.
  const all = [...sizes, ...Array<number>(Math.max(0, 6 - sizes.length)).fill(1_000)];
  const layers = all.map((n, i) => {
    const data = randomBytes(n);
    const d = layer(data, i);
    blobs.set(d.digest, data);
    return d;
  });
  const key = (s: string) => digestBytes(`${seed}:${s}`);
  const g = new CacheGraph();
  // Stage "base": two steps on a base image.
  const img = g.add(key('image'));
  img.addResult('2024-05-01T10:00:00Z', [layers[0]!]);
  const s1 = g.add(key('base-run-1'));
  s1.linkFrom(img, 0, '');
  s1.addResult('2024-05-01T10:01:00Z', [layers[0]!, layers[1]!]);
  // Stage "deps": shares the base layers and adds its own.
  const s2 = g.add(key('deps-run'));
  s2.linkFrom(s1, 0, '');
  s2.addResult('2024-05-01T10:02:00Z', [layers[0]!, layers[1]!, layers[2]!]);
  // A copy from the context with a selector on input 1.
  const ctx = g.add(key('context'));
  const cp = g.add(key('copy-src'));
  cp.linkFrom(s2, 0, '');
  cp.linkFrom(ctx, 1, digestBytes('selector:/src'));
  cp.addResult('2024-05-01T10:03:00Z', [layers[0]!, layers[1]!, layers[2]!, layers[3]!]);
  // Stage "final": a second base sharing layer 0, and a merge of both stages.
  const f1 = g.add(key('final-run'));
  f1.linkFrom(img, 0, '');
  f1.addResult('2024-05-01T10:04:00Z', [layers[0]!, layers[4]!]);
  const fin = g.add(key('final-copy'));
  fin.linkFrom(f1, 0, '');
  fin.linkFrom(cp, 1, digestBytes('selector:/out'));
  fin.linkFrom(cp, 1, digestBytes('selector:/bin'));
  fin.addResult('2024-05-01T10:05:00Z', [layers[0]!, layers[4]!, layers[5]!]);
  // Random keys are never cached (BuildKit drops them); links from them vanish.
  const rnd = g.add('random:' + key('random'));
  fin.linkFrom(rnd, 2, '');

  const opened: string[] = [];
  return {
    graph: g,
    blobs,
    layers,
    provider: {
      opened,
      open(d: Descriptor) {
        opened.push(d.digest);
        const data = blobs.get(d.digest);
        if (!data) throw new Error(`no blob ${d.digest}`);
        // Several small pieces, like a file read, so chunking is exercised.
        const parts: Buffer[] = [];
        for (let i = 0; i < data.length; i += 256 << 10) parts.push(data.subarray(i, i + (256 << 10)));
        return Readable.from(parts);
      },
    },
  };
}

/** Writes the blobs as a content store directory (blobs/sha256/<hex>), like buildkitd's. */
export function writeContentStore(dir: string, blobs: Map<string, Buffer>): void {
  for (const [digest, data] of blobs) {
    const [alg, hex] = digest.split(':') as [string, string];
    mkdirSync(path.join(dir, 'blobs', alg), { recursive: true });
    writeFileSync(path.join(dir, 'blobs', alg, hex), data);
  }
}
