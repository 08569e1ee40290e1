// What a spec names, as a resource the policy can match (see policy.ts):
//
//   type=registry,ref=HOST/REPO[:TAG|@DIGEST]  → "HOST/REPO", the repository with its registry host.
//       The host is part of the name because the daemon's credentials may reach several
//       registries: a grant on cache/acme at one registry says nothing about another.
//       References are normalized first (docker.io, library/), exactly as the store will
//       read them; tags and digests are not part of the name (grants are per repository).
//   type=local inside the daemon's root        → "local/<path relative to the root>"; the root
//       itself (the embedded default store) is "local".
//   type=local anywhere else, content_store_dir → "file/<absolute path without its leading />".
//
// Local paths are made absolute and normalized ('..', '.', '//', trailing '/') before
// naming, with the same resolution the daemon then uses to open them, so "cache/b/../a"
// is named, and checked, as "local/cache/a". Neither "local" nor "file" can be the
// first segment of a registry name: a reference whose first component has no '.' or ':'
// and is not "localhost" belongs to docker.io, so registry names always start with a host.
import path from 'node:path';
import { localPlace } from '../../cache/remote/local/index.js';
import type { CacheSpec } from '../../cache/spec.js';
import { invalidArgument } from '../../errors.js';
import { parseReference } from '../../oci/reference.js';

export const LOCAL_PREFIX = 'local';
export const FILE_PREFIX = 'file';

/** "HOST/REPO" of a reference, normalized as the registry backend normalizes it. Throws INVALID_ARGUMENT. */
export function registryName(ref: string): string {
  const r = parseReference(ref);
  return `${r.registry}/${r.repository}`;
}

/** Name of an absolute or root-relative local path. */
export function localName(p: string, root: string): string {
  if (p.includes('\0')) throw invalidArgument('a local path must not contain NUL', { reason: 'invalid-spec' });
  const absRoot = path.resolve(root);
  const abs = path.resolve(absRoot, p);
  const rel = path.relative(absRoot, abs);
  // Inside the root: rel is '' (the root), or a relative path that does not climb out.
  const inside = rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
  if (inside) return rel === '' ? LOCAL_PREFIX : `${LOCAL_PREFIX}/${rel.split(path.sep).join('/')}`;
  return abs === '/' ? FILE_PREFIX : `${FILE_PREFIX}${abs.split(path.sep).join('/')}`;
}

/**
 * The resource a resolved spec reads (import) or writes (export).
 * INVALID_ARGUMENT for specs that name nothing a policy can judge; decided
 * from the spec alone. The place is read with the backend's own accessor
 * (localPlace: src= to read, dest= to write, the other refused), so the name
 * checked is the place the store then opens.
 */
export function specResource(spec: CacheSpec, root: string, mode: 'import' | 'export'): string {
  if (spec.type === 'registry') {
    const ref = spec.attrs['ref'];
    if (!ref) throw invalidArgument('type=registry needs ref=HOST/REPO[:TAG]', { reason: 'invalid-spec' });
    return registryName(ref);
  }
  if (spec.type === 'local') {
    return localName(localPlace(spec.attrs, mode), root);
  }
  throw invalidArgument(`unsupported cache type ${JSON.stringify(spec.type)}`, { reason: 'invalid-spec' });
}

/**
 * Attributes a tenant may not set. registry.insecure switches the daemon to
 * plain HTTP, and the daemon's registry credentials would then cross the
 * network in the clear: with auth on, only the daemon's config (registry.hosts)
 * decides which registries are insecure.
 */
export function refuseDaemonOnlyAttrs(spec: CacheSpec): void {
  if (spec.attrs['registry.insecure'] !== undefined) {
    throw invalidArgument('registry.insecure is not accepted with auth on: the daemon config (registry.hosts) decides which registries use plain HTTP', {
      reason: 'invalid-spec',
    });
  }
}
