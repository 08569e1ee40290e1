// Loading fixture caches for tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CacheGraph } from '../../src/cache/graph.js';
import { addToGraph, loadCache, type LoadedCache } from '../../src/cache/import.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local/index.js';

/** The descriptor index.json lists first. */
export function topDescriptor(dir: string): Descriptor {
  const idx = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const d = idx.manifests[0];
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

export async function loadFixture(dir: string): Promise<{ store: LocalStore; loaded: LoadedCache }> {
  const store = new LocalStore(dir);
  return { store, loaded: await loadCache(store, topDescriptor(dir)) };
}

export async function graphOf(...dirs: string[]): Promise<CacheGraph> {
  const g = new CacheGraph();
  for (const dir of dirs) addToGraph(g, (await loadFixture(dir)).loaded);
  return g;
}

export function blobText(store: LocalStore, digest: string): string {
  return readFileSync(store.blobPath(digest), 'utf8');
}
