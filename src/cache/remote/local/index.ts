// type=local: an OCI layout directory, with BuildKit's attributes
// (cache/remotecache/local/local.go): src= for imports, dest= for exports,
// tag= (default "latest") and digest= to import one manifest by digest.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { invalidArgument, isNotFound, notFound } from '../../../errors.js';
import { isDigest } from '../../../oci/digest.js';
import { LocalStore } from '../../../store/local/index.js';
import { shapeOptions } from '../../export.js';
import type { Backend } from '../types.js';

export const DEFAULT_TAG = 'latest';

/**
 * The one attribute that says where a local cache is: src= for an import,
 * dest= for an export. The other one is a usage error, never a fallback: a
 * spec must not be able to name one directory for whoever checks it and
 * another for whoever writes it. Everything that decides a local cache's
 * place (the daemon's authorization too) reads it through this.
 */
export function localPlace(attrs: Record<string, string>, mode: 'import' | 'export'): string {
  const [key, other] = mode === 'import' ? ['src', 'dest'] : ['dest', 'src'];
  if (attrs[other] !== undefined) {
    throw invalidArgument(`type=local ${mode === 'import' ? 'import source' : 'export target'} takes ${key}=DIR, not ${other}=`, { reason: 'invalid-spec' });
  }
  const dir = attrs[key];
  if (!dir) throw invalidArgument(`type=local ${mode} needs ${key}=DIR`, { reason: 'invalid-spec' });
  return dir;
}

export const localBackend: Backend = {
  type: 'local',
  attrs: ['src', 'dest', 'tag', 'digest'],

  async openImport(attrs) {
    const store = new LocalStore(localPlace(attrs, 'import'));
    const digest = attrs['digest'];
    if (digest !== undefined && !isDigest(digest)) throw invalidArgument(`invalid digest=${digest}`, { reason: 'invalid-spec' });
    const explicitTag = attrs['tag'];
    const tag = explicitTag || DEFAULT_TAG;
    return {
      store,
      name: `local:${store.dir} ${digest ? `digest=${digest}` : `tag=${tag}`}`,
      reference: digest ?? tag,
      // A local index is one small file read: nothing worth cancelling.
      async resolve() {
        // A directory without index.json holds no cache at all: say so rather than "tag not found".
        if (existsSync(store.dir) && !existsSync(path.join(store.dir, 'index.json'))) {
          throw notFound(`${store.dir} is not an OCI layout (it has no index.json): no cache was exported there`, { reason: 'not-a-layout' });
        }
        if (digest) return store.resolve(digest);
        try {
          return await store.resolve(tag);
        } catch (err) {
          // A layout copied out of a registry often has one entry named after
          // its registry tag; with no tag= given, that entry is the cache.
          if (explicitTag === undefined && isNotFound(err)) {
            const tags = await store.tags();
            if (tags.length === 1) return tags[0]!.desc;
            if (tags.length > 1) {
              throw notFound(`tag "${tag}" not found in ${store.location}; it has ${tags.map((t) => t.tag).join(', ')}: pass tag=`);
            }
          }
          throw err;
        }
      },
    };
  },

  async openExport(attrs) {
    const store = new LocalStore(localPlace(attrs, 'export'), { create: true });
    const tag = attrs['tag'] || DEFAULT_TAG;
    return { store, tag, shape: shapeOptions(attrs), name: `local:${store.dir} tag=${tag}` };
  },
};
