// The inline-cache fixture (an image whose config carries BuildKit's inline
// cache) pushed to a registry as the image it is: manifest bytes unchanged,
// blob by blob.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local/index.js';
import { RegistryStore } from '../../src/store/registry/index.js';
import { BK } from '../../test/fixtures.js';

/** Pushes the image to host/repo:tag (plain HTTP); its manifest's descriptor. */
export async function pushInlineImage(host: string, repoTag: string): Promise<Descriptor> {
  const [repo, tag] = repoTag.split(':') as [string, string];
  const src = new LocalStore(path.join(BK, 'inline-image'));
  const dst = new RegistryStore(`${host}/${repo}`, { insecure: true });
  try {
    const top = (await src.tags())[0]!.desc;
    const m = JSON.parse(readFileSync(src.blobPath(top.digest), 'utf8'));
    for (const d of [m.config, ...m.layers]) await dst.push(d, await src.fetch(d));
    await dst.push(top, readFileSync(src.blobPath(top.digest)));
    await dst.tag(top, tag);
    return top;
  } finally {
    await dst.close();
  }
}
