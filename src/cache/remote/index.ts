// The registry of cache backends, keyed by their `type=` name.
import { invalidArgument } from '../../errors.js';
import type { CacheSpec } from '../spec.js';
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

export function openImport(spec: CacheSpec, ctx: BackendContext = {}): Promise<ImportTarget> {
  return backendFor(spec).openImport(spec.attrs, ctx);
}

export function openExport(spec: CacheSpec, ctx: BackendContext = {}): Promise<ExportTarget> {
  return backendFor(spec).openExport(spec.attrs, ctx);
}

export type { Backend, BackendContext, ExportTarget, ImportTarget };
