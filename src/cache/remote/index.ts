// The registry of cache backends, keyed by their `type=` name.
import { invalidArgument } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { fetchBytes, MAX_METADATA_BYTES } from '../../store/content.js';
import type { CacheSpec } from '../spec.js';
import { checkSpecAttrs } from '../spec-attrs.js';
import { localBackend } from './local/index.js';
import { registryBackend } from './registry/index.js';
import type { Backend, BackendContext, ExportTarget, ImportTarget } from './types.js';

const backends = new Map<string, Backend>([
  [localBackend.type, localBackend],
  [registryBackend.type, registryBackend],
]);

function backendFor(spec: CacheSpec): Backend {
  const b = backends.get(spec.type);
  if (!b) {
    throw invalidArgument(`unsupported cache type ${JSON.stringify(spec.type)} (supported: ${[...backends.keys()].join(', ')})`, {
      reason: 'invalid-spec',
    });
  }
  return b;
}

export async function openImport(spec: CacheSpec, ctx: BackendContext = {}): Promise<ImportTarget> {
  const b = backendFor(spec);
  checkSpecAttrs(spec.type, spec.attrs, b.attrs);
  return b.openImport(spec.attrs, ctx);
}

export async function openExport(spec: CacheSpec, ctx: BackendContext = {}): Promise<ExportTarget> {
  const b = backendFor(spec);
  checkSpecAttrs(spec.type, spec.attrs, b.attrs);
  return b.openExport(spec.attrs, ctx);
}

/**
 * The manifest an import names, and its bytes: one request where the
 * backend reads both at once, else resolve() and a bounded, verified fetch.
 */
export async function readManifest(target: ImportTarget, signal?: AbortSignal): Promise<{ desc: Descriptor; bytes: Buffer }> {
  if (target.read) return target.read({ signal });
  const desc = await target.resolve({ signal });
  return { desc, bytes: await fetchBytes(target.store, desc, MAX_METADATA_BYTES, signal) };
}

export type { Backend, BackendContext, ExportTarget, ImportTarget };
