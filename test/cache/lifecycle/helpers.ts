// Caches on disk for the lifecycle tests: fixture copies that may be broken
// on purpose, and synthetic graphs written as real local caches.
import { cpSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { CacheGraph, type CacheNode } from '../../../src/cache/graph.js';
import { exportGraph } from '../../../src/cache/operations.js';
import { LocalStore } from '../../../src/store/local/index.js';
import type { BlobSource } from '../../../src/cache/transfer.js';
import type { Descriptor } from '../../../src/oci/descriptor.js';
import { BK } from '../../fixtures.js';
import { tempDir } from '../../tmp.js';

export const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

/** A writable copy of a fixture layout. */
export function fixtureCopy(name: string): string {
  const dir = path.join(tempDir('bkcache-lc-'), name);
  cpSync(path.join(BK, name), dir, { recursive: true });
  return dir;
}

/** A layer whose content is `layer-<name>` repeated `repeat` times. */
export function layer(name: string | number, repeat = 1): { desc: Descriptor; content: Buffer } {
  const content = Buffer.from(`layer-${name}`.repeat(repeat));
  const digest = 'sha256:' + createHash('sha256').update(content).digest('hex');
  return {
    content,
    desc: {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest,
      size: content.length,
      annotations: { 'containerd.io/uncompressed': sha(`diff-${name}`), 'buildkit/description': `RUN step ${name}` },
    },
  };
}

/** Blobs served from memory. */
export class MemoryBlobs implements BlobSource {
  readonly map = new Map<string, Buffer>();
  add(l: { desc: Descriptor; content: Buffer }): Descriptor {
    this.map.set(l.desc.digest, l.content);
    return l.desc;
  }
  async fetch(d: Descriptor): Promise<Readable> {
    const b = this.map.get(d.digest);
    if (!b) throw new Error(`no blob ${d.digest}`);
    return Readable.from([b]);
  }
}

/**
 * A chain of `steps` records (step i links from step i-1), each with a result
 * of its own layer on top of the previous ones, created one hour apart
 * starting at `start`; layer i is `size(i)` bytes.
 */
export function chainGraph(
  steps: number,
  opts: { start?: Date; size?: (i: number) => number; prefix?: string; graph?: CacheGraph; blobs?: MemoryBlobs } = {},
): {
  graph: CacheGraph;
  nodes: CacheNode[];
  blobs: MemoryBlobs;
} {
  const graph = opts.graph ?? new CacheGraph();
  const blobs = opts.blobs ?? new MemoryBlobs();
  const nodes: CacheNode[] = [];
  const start = (opts.start ?? new Date('2026-01-01T00:00:00Z')).getTime();
  const layers: Descriptor[] = [];
  for (let i = 0; i < steps; i++) {
    const n = graph.add(sha(`${opts.prefix ?? ''}step-${i}`)) as CacheNode;
    if (i > 0) n.linkFrom(nodes[i - 1]!, 0);
    const text = `${opts.prefix ?? ''}${i}`;
    layers.push(blobs.add(layer(text, Math.max(1, Math.ceil((opts.size?.(i) ?? 10) / `layer-${text}`.length)))));
    n.addResult(new Date(start + i * 3_600_000), [...layers]);
    nodes.push(n);
  }
  return { graph, nodes, blobs };
}

/** Writes a graph as a local cache (image-manifest shape) and returns its spec string. */
export async function writeLocal(graph: CacheGraph, blobs: BlobSource, dir = tempDir('bkcache-lc-'), tag = 'latest'): Promise<string> {
  await exportGraph(graph, blobs, { type: 'local', attrs: { dest: dir, tag } });
  return `type=local,src=${dir},tag=${tag}`;
}

/**
 * A local cache written as given: `config` (any JSON, however broken) as the
 * cache config of an image-manifest-shaped cache tagged `latest`, with
 * `layers` as its layers. For configs no graph could be exported as.
 */
export async function rawLocalCache(config: unknown, layers: { desc: Descriptor; content: Buffer }[] = []): Promise<string> {
  const dir = tempDir('bkcache-raw-');
  const store = new LocalStore(dir, { create: true });
  const put = async (mediaType: string, content: Buffer): Promise<Descriptor> => {
    const desc = { mediaType, digest: 'sha256:' + createHash('sha256').update(content).digest('hex'), size: content.length };
    await store.push(desc, content);
    return desc;
  };
  for (const l of layers) await store.push(l.desc, l.content);
  const cfg = await put('application/vnd.buildkit.cacheconfig.v0', Buffer.from(JSON.stringify(config)));
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: layers.map((l) => l.desc) };
  const m = await put(manifest.mediaType, Buffer.from(JSON.stringify(manifest)));
  await store.tag(m, 'latest');
  return `type=local,src=${dir},tag=latest`;
}

/**
 * Cache configs no graph can be made of, each with the reason BuildKit's
 * parser (and ours) refuses it, over two real layers `layers`. BuildKit's
 * JSON names a record's results "layers".
 */
export function brokenConfigs(): { layers: { desc: Descriptor; content: Buffer }[]; configs: [unknown, string][] } {
  const l = [layer('a'), layer('b')];
  const layers = [
    { blob: l[0]!.desc.digest, parent: -1 },
    { blob: l[1]!.desc.digest, parent: 0 },
  ];
  const T = '2026-11-01T00:00:00Z';
  return {
    layers: l,
    configs: [
      [{ layers, records: [{ digest: sha('a'), inputs: [[{ link: 1 }]], layers: [{ layer: 1, createdAt: T }] }, { digest: sha('b'), inputs: [[{ link: 0 }]] }] }, 'looping-record'],
      [{ layers, records: [{ digest: sha('a'), inputs: [[{ link: 0 }]] }] }, 'looping-record'],
      [{ layers, records: [{ digest: 'k', layers: [{ layer: 1, createdAt: T }] }] }, 'invalid-digest'],
      [{ layers, records: [{ digest: sha('a'), inputs: [[{ link: 7 }]] }] }, 'record-index-out-of-range'],
      [{ layers, records: [{ digest: sha('a'), inputs: [[{ link: -1 }]] }] }, 'record-index-out-of-range'],
      [{ layers, records: [{ digest: sha('a'), layers: [{ layer: 9, createdAt: T }] }] }, 'layer-index-out-of-range'],
      [{ layers, records: [{ digest: sha('a'), chains: [{ layers: [0, 9], createdAt: T }] }] }, 'layer-index-out-of-range'],
      [{ layers: [{ blob: l[0]!.desc.digest, parent: 1 }, { blob: l[1]!.desc.digest, parent: 0 }], records: [{ digest: sha('a'), layers: [{ layer: 1, createdAt: T }] }] }, 'looping-layer'],
      [{ layers, records: [{ digest: sha('a'), layers: [{ layer: 1, createdAt: 'yesterday' }] }] }, 'invalid-time'],
      [{ layers, records: [{ digest: sha('a'), inputs: [[{ link: 0.5 }]] }] }, 'type-mismatch'],
    ],
  };
}

