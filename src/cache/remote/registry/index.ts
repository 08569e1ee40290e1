// type=registry: a cache in a repository of an OCI registry, with buildctl's
// attributes (cache/remotecache/registry/registry.go): ref=host/repo[:tag],
// registry.insecure=true for plain HTTP, plus the export shape options.
import { invalidArgument } from '../../../errors.js';
import { parseReference } from '../../../oci/reference.js';
import type { RegistryStore, RegistryStoreOptions } from '../../../store/registry/index.js';
import { parseGoBool, shapeOptions } from '../../export.js';
import type { Backend, BackendContext } from '../types.js';

async function storeFor(attrs: Record<string, string>, ctx: BackendContext): Promise<{ store: RegistryStore; tag?: string; digest?: string; ref: string }> {
  const ref = attrs['ref'];
  if (!ref) throw invalidArgument('type=registry needs ref=HOST/REPO[:TAG]', { reason: 'invalid-spec' });
  const parsed = parseReference(ref);
  const opts: RegistryStoreOptions = {
    hosts: ctx.registry?.hosts,
    dockerConfig: ctx.registry?.dockerConfig,
    maxConcurrency: ctx.registry?.concurrency,
    timeouts: ctx.registry?.timeouts,
    http: ctx.registry?.connectionsPerHost ? { connectionsPerHost: ctx.registry.connectionsPerHost } : undefined,
  };
  const insecure = attrs['registry.insecure'];
  if (insecure !== undefined) opts.insecure = parseGoBool('registry.insecure', insecure);
  // Loaded on first use: the HTTP client is not needed by commands that only read local caches.
  const { RegistryStore } = await import('../../../store/registry/index.js');
  const store = new RegistryStore({ registry: parsed.registry, repository: parsed.repository }, opts);
  return { store, tag: parsed.tag, digest: parsed.digest, ref: parsed.toString() };
}

export const registryBackend: Backend = {
  type: 'registry',
  attrs: ['ref', 'registry.insecure'],

  async openImport(attrs, ctx) {
    const { store, tag, digest, ref } = await storeFor(attrs, ctx);
    const reference = digest ?? tag ?? 'latest';
    return { store, name: ref, reference, resolve: (opts) => store.resolve(reference, opts), read: (opts) => store.readManifest(reference, opts) };
  },

  async openExport(attrs, ctx) {
    const { store, tag, digest, ref } = await storeFor(attrs, ctx);
    if (digest) {
      await store.close();
      throw invalidArgument(`cannot export to a digest reference ${ref}: name a tag`, { reason: 'invalid-spec' });
    }
    return { store, tag: tag ?? 'latest', shape: shapeOptions(attrs), name: ref };
  },
};
