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

export const localBackend: Backend = {
  type: 'local',
  attrs: ['src', 'dest', 'tag', 'digest'],

  async openImport(attrs) {
    const src = attrs['src'];
    if (!src) throw invalidArgument('type=local import needs src=DIR', { reason: 'invalid-spec' });
    const store = new LocalStore(src);
    const digest = attrs['digest'];
    if (digest !== undefined && !isDigest(digest)) throw invalidArgument(`invalid digest=${digest}`, { reason: 'invalid-spec' });
    const explicitTag = attrs['tag'];
    const tag = explicitTag || DEFAULT_TAG;
    return {
      store,
      name: `local:${store.dir} ${digest ? `digest=${digest}` : `tag=${tag}`}`,
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
    const dest = attrs['dest'];
    if (!dest) throw invalidArgument('type=local export needs dest=DIR', { reason: 'invalid-spec' });
    const store = new LocalStore(dest, { create: true });
    const tag = attrs['tag'] || DEFAULT_TAG;
    return { store, tag, shape: shapeOptions(attrs), name: `local:${store.dir} tag=${tag}` };
  },
};
