// gc's side of a registry repository: listing what each tag names, and
// deleting expired manifests with an honest account of what went.
//
// Distribution deletes a manifest by digest only, and that removes every tag
// naming it at that moment
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#deleting-manifests);
// an answer of 202 promises no more than that the registry took the request.
// So every delete is followed by a look at the tags it was meant to remove:
// a tag still naming the manifest was not deleted (a registry or proxy that
// acknowledges and ignores), one naming another manifest was pushed meanwhile
// and is not ours. A 404 means someone (another gc) deleted it first: the
// tags are gone either way.
import { asBkError, BkError, failedPrecondition, isNotFound } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { isDigest } from '../../oci/digest.js';
import { isManifestMediaType, MT } from '../../oci/media-types.js';
import { validateTag } from '../../oci/reference.js';
import { RegistryStore } from '../../store/registry/index.js';
import { openImport, type BackendContext } from '../remote/index.js';
import type { CacheSpec } from '../spec.js';
import { mapLimit } from '../transfer.js';
import type { Entry, GcTag, RemoveOutcome, Repo } from './gc.js';

/** Tags resolved at once: the listing is what gc's deletes are checked against, so it should be quick to take. */
const RESOLVE_CONCURRENCY = 8;

function isTag(name: string): boolean {
  try {
    validateTag(name);
    return !isDigest(name);
  } catch {
    return false;
  }
}

/** What `tag` names now; undefined when it no longer exists. */
async function current(store: RegistryStore, ref: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
  return store.resolve(ref, { signal }).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
}

export async function openRegistryRepo(spec: CacheSpec, ctx: BackendContext): Promise<Repo> {
  const target = await openImport(spec, ctx);
  const store = target.store as RegistryStore;
  return {
    store,
    recheck: true,
    async list(signal) {
      // Each name once (listTags); a lying registry may list names no tag can have (resolving one would ask for something else).
      const names = await store.tags({ signal });
      // Per name: its descriptor, 'gone' (deleted meanwhile), or undefined (not a tag: it cannot be resolved, and stays).
      const descs = new Array<Descriptor | 'gone' | undefined>(names.length);
      await mapLimit(
        names.map((_, i) => i),
        RESOLVE_CONCURRENCY,
        async (i) => {
          if (isTag(names[i]!)) descs[i] = (await current(store, names[i]!, signal)) ?? 'gone';
        },
      );
      const out: Entry[] = [];
      names.forEach((tag, i) => {
        const d = descs[i];
        if (d !== 'gone') out.push(d ? { tag, desc: d } : { tag });
      });
      return out;
    },
    async remove(victims, signal) {
      const outcome: RemoveOutcome = { deleted: [], failed: [], changed: [] };
      const byDigest = new Map<string, GcTag[]>();
      for (const v of victims) byDigest.set(v.digest, [...(byDigest.get(v.digest) ?? []), v]);
      const sent: GcTag[] = [];
      for (const [digest, tags] of byDigest) {
        if (outcome.error) {
          outcome.failed.push(...tags.map((t) => ({ ...t, reason: 'delete-failed' as const })));
          continue;
        }
        try {
          const desc = await current(store, digest, signal);
          if (!desc) {
            outcome.deleted.push(...tags); // deleted by someone else since the check: gone all the same
            continue;
          }
          // A manifest, whatever media type this HEAD reports: store.delete picks the
          // endpoint by media type, and DELETE /blobs/<digest> would leave the tags
          // naming the manifest while (on some registries) removing its bytes.
          await store.delete({ ...desc, mediaType: isManifestMediaType(desc.mediaType) ? desc.mediaType : MT.ociManifest }, { signal });
          sent.push(...tags);
        } catch (err) {
          if (signal?.aborted) throw err;
          if (isNotFound(err)) {
            outcome.deleted.push(...tags);
            continue;
          }
          outcome.error =
            err instanceof BkError && err.reason === 'delete-unsupported'
              ? failedPrecondition(`${store.location} does not allow deletes (distribution: storage.delete.enabled=true); nothing more was deleted`, {
                  cause: err,
                  reason: 'delete-unsupported',
                })
              : asBkError(err);
          outcome.failed.push(...tags.map((t) => ({ ...t, reason: 'delete-failed' as const })));
        }
      }
      // What the deletes did, tag by tag (bounded: one HEAD per tag deleted).
      // A look that fails (an outage) leaves the registry's word: deleted, and the run fails with that error.
      const now = new Array<Descriptor | undefined | 'unknown'>(sent.length);
      let lookError: unknown;
      await mapLimit(
        sent.map((_, i) => i),
        RESOLVE_CONCURRENCY,
        async (i) => {
          try {
            now[i] = await current(store, sent[i]!.tag, signal);
          } catch (err) {
            if (signal?.aborted) throw err;
            lookError ??= err;
            now[i] = 'unknown';
          }
        },
      );
      if (lookError && !outcome.error) outcome.error = asBkError(lookError);
      const ignored: string[] = [];
      sent.forEach((t, i) => {
        const d = now[i];
        if (!d || d === 'unknown') outcome.deleted.push(t);
        else if (d.digest === t.digest) {
          outcome.failed.push({ ...t, reason: 'delete-ignored' });
          ignored.push(t.tag);
        } else outcome.changed.push({ tag: t.tag, digest: d.digest, reason: 'changed' });
      });
      if (ignored.length && !outcome.error) {
        outcome.error = failedPrecondition(
          `${store.location} accepted the DELETE but still serves ${ignored.length} tag${ignored.length > 1 ? 's' : ''} (${ignored.slice(0, 3).join(', ')}${ignored.length > 3 ? ', …' : ''}); they were not deleted`,
          { reason: 'delete-ignored' },
        );
      }
      return outcome;
    },
    note:
      `the registry now holds blobs no manifest names; its own garbage collection frees them ` +
      `(distribution: \`registry garbage-collect --delete-untagged CONFIG\` with the registry read-only or stopped)`,
    close: () => store.close(),
  };
}
