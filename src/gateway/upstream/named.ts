// "Does anything in this repository still name it?" for an upstream that
// cannot be walked as a whole (a registry): every tag's manifest and what its
// indexes name, read through the Upstream interface. A registry DELETE of a
// manifest removes it under every tag and breaks an index naming it; of a
// blob, breaks every manifest naming it: both are refused while something
// the walk reaches names the digest (DENIED, reason still-named), and when
// the walk is too large to finish (UNSUPPORTED, delete-unprovable).
// A manifest pushed by digest only and reached from no tag is invisible to
// any registry client: the walk cannot see what it names.
import { BkError } from '../../errors.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { namedBy } from '../../store/local/prune.js';
import type { Upstream } from './types.js';

/** Manifests read at most by one walk: a DELETE costs at most this many upstream reads. */
export const MAX_DELETE_WALK = 1000;

/**
 * Throws unless no manifest reached from a tag of `repo` names `digest`.
 * `deleting: 'manifest'`: tags pointing at the manifest itself go with it, so they are not walked.
 */
export async function refuseStillNamed(up: Upstream, repo: string, digest: string, deleting: 'manifest' | 'blob', signal?: AbortSignal): Promise<void> {
  const tags = (await up.tags(repo, signal)) ?? [];
  const queue: string[] = [...tags];
  const seen = new Set<string>();
  let reads = 0;
  while (queue.length) {
    const ref = queue.pop()!;
    if (seen.has(ref)) continue;
    seen.add(ref);
    if (++reads > MAX_DELETE_WALK) {
      throw new BkError('FAILED_PRECONDITION', `${repo} holds more than ${MAX_DELETE_WALK} manifests to walk`, { reason: 'delete-unprovable' });
    }
    const m = await up.getManifest(repo, ref, '', signal);
    if (!m || (deleting === 'manifest' && m.digest === digest)) continue;
    let named: ReturnType<typeof namedBy>;
    try {
      named = namedBy(parseJsonBytes(m.bytes, m.digest));
    } catch {
      continue; // not a manifest of a kind that names by descriptor (schema 1, an artifact of its own format)
    }
    if ([...named.manifests, ...named.leaves].some((d) => d.digest === digest)) {
      throw new BkError('FAILED_PRECONDITION', `${m.digest} in ${repo} still names ${digest}`, { reason: 'still-named' });
    }
    for (const c of named.manifests) if (!seen.has(c.digest)) queue.push(c.digest);
  }
}
