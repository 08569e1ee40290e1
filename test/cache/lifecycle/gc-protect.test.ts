import { describe, expect, it } from 'vitest';
import { IndexChildren } from '../../../src/cache/lifecycle/gc-protect.js';
import { sha } from './helpers.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

describe('what gc keeps of the manifests it reads', () => {
  it('of an index: only the children a listed tag names (whatever type they claim) and nested indexes; of anything else, nothing', () => {
    const tagged = sha('tagged manifest');
    const known = new IndexChildren(new Set([tagged]));
    const layers = Array.from({ length: 10_000 }, (_, i) => ({ mediaType: LAYER, digest: sha(`layer ${i}`), size: 1 }));
    const nested = { mediaType: INDEX, digest: sha('nested'), size: 2 };
    const lying = { mediaType: LAYER, digest: tagged, size: 3 };
    known.add(sha('cache index'), { schemaVersion: 2, mediaType: INDEX, manifests: [...layers, nested, lying] });
    expect(known.get(sha('cache index'))).toEqual([nested, lying]);
    known.add(sha('image'), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: layers[0], layers });
    expect(known.has(sha('image'))).toBe(true);
    expect(known.get(sha('image'))).toBeNull();
    known.add(sha('broken'), { schemaVersion: 2, mediaType: INDEX, manifests: 'no' });
    expect(known.get(sha('broken'))).toEqual([]);
  });
});
