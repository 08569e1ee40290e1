// Which expired caches gc may delete: none that a kept tag names, directly
// or through an index it names (nested indexes followed), judged once on
// gc's listing and again on a listing taken right before the deletes.
import { BkError, resourceExhausted } from '../../errors.js';
import type { Descriptor } from '../../oci/descriptor.js';
import { parseJsonBytes } from '../../oci/go-json.js';
import { decodeIndex, detectManifestMediaType } from '../../oci/manifest.js';
import { isIndexMediaType } from '../../oci/media-types.js';
import { fetchBytes } from '../../store/content.js';
import type { ContentStore } from '../../store/types.js';
import type { Entry, GcTag, Repo } from './gc.js';

/** Index reads a gc may make to find what kept indexes name; past it, gc refuses rather than guess. */
const MAX_INDEX_READS = 10_000;

/**
 * What gc keeps of each manifest it read, by digest: null for one that is
 * not an index, else the children that can matter, those a listed tag names
 * (only those can be deleted) and nested indexes (they may name more). Not
 * the documents: a repository of large cache indexes (a descriptor per
 * layer) held them all at once.
 */
export class IndexChildren {
  private readonly byDigest = new Map<string, Descriptor[] | null>();

  /** @param tagged every digest a tag of the first listing names (the victims are among them). */
  constructor(private readonly tagged: ReadonlySet<string>) {}

  has(digest: string): boolean {
    return this.byDigest.has(digest);
  }

  get(digest: string): Descriptor[] | null | undefined {
    return this.byDigest.get(digest);
  }

  /** Keeps what matters of a parsed manifest; a malformed index names nothing we can read. */
  add(digest: string, doc: unknown): void {
    let children: Descriptor[] | null = null;
    if (isIndexMediaType(detectManifestMediaType(doc))) {
      try {
        children = decodeIndex(doc).manifests.filter((c) => this.tagged.has(c.digest) || isIndexMediaType(c.mediaType));
      } catch {
        children = [];
      }
    }
    this.byDigest.set(digest, children);
  }
}

/**
 * Every manifest digest the kept tags' indexes list, nested indexes
 * followed (each read once, at most MAX_INDEX_READS). A kept index that
 * cannot be read names nothing we could protect; an outage fails the gc
 * before anything is deleted.
 */
async function namedByIndexes(store: ContentStore, entries: Entry[], kept: GcTag[], known: IndexChildren, signal?: AbortSignal): Promise<Set<string>> {
  const descs = new Map<string, Descriptor>();
  for (const e of entries) if (e.desc) descs.set(e.desc.digest, e.desc);
  const named = new Set<string>();
  const seen = new Set<string>();
  const todo: Descriptor[] = [];
  for (const k of kept) {
    const d = descs.get(k.digest);
    // What the registry says a manifest is decides whether it is read: only an index lists manifests.
    if (d && !seen.has(d.digest) && (known.has(d.digest) || !d.mediaType || isIndexMediaType(d.mediaType))) {
      seen.add(d.digest);
      todo.push(d);
    }
  }
  let reads = 0;
  while (todo.length) {
    const d = todo.pop()!;
    if (!known.has(d.digest)) {
      if (++reads > MAX_INDEX_READS) {
        throw resourceExhausted(`the kept tags name more than ${MAX_INDEX_READS} indexes; nothing was deleted`, { reason: 'too-many-indexes' });
      }
      try {
        known.add(d.digest, parseJsonBytes(await fetchBytes(store, d, undefined, signal), `manifest ${d.digest}`));
      } catch (err) {
        if (signal?.aborted || !(err instanceof BkError) || !['NOT_FOUND', 'DATA_LOSS', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED'].includes(err.code)) throw err;
        continue;
      }
    }
    for (const c of known.get(d.digest) ?? []) {
      named.add(c.digest);
      // Only nested indexes can name more manifests (a cache index lists its layers here: those are not read).
      if (isIndexMediaType(c.mediaType) && !seen.has(c.digest)) {
        seen.add(c.digest);
        todo.push(c);
      }
    }
  }
  return named;
}

/**
 * Splits expired tags into those to delete and those to keep. A manifest a
 * kept tag names is never deleted, whatever other tags name it: neither the
 * one a kept tag points at, nor one a kept index lists (deleting it would
 * leave the kept tag naming an index with a hole).
 */
export async function protect(
  store: ContentStore,
  entries: Entry[],
  kept: GcTag[],
  expired: GcTag[],
  known: IndexChildren,
  signal?: AbortSignal,
): Promise<{ victims: GcTag[]; spared: GcTag[] }> {
  const keptDigests = new Set(kept.map((k) => k.digest));
  const listed = expired.length ? await namedByIndexes(store, entries, kept, known, signal) : new Set<string>();
  const victims: GcTag[] = [];
  const spared: GcTag[] = [];
  for (const t of expired) {
    if (keptDigests.has(t.digest)) spared.push({ ...t, reason: 'shares-manifest' });
    else if (listed.has(t.digest)) spared.push({ ...t, reason: 'named-by-kept-index' });
    else victims.push(t);
  }
  return { victims, spared };
}

/**
 * The tags listed again right before the deletes, and the victims judged
 * once more against them: a victim tag re-pointed meanwhile is kept
 * (`changed`), and any tag that is not a victim now (a kept tag re-pointed
 * at an expired manifest, a tag pushed since) protects what it names, as
 * kept tags do. A victim tag gone meanwhile was deleted by someone else:
 * neither deleted by gc nor kept. What changes between this listing and a
 * DELETE is not seen: the registry API has no conditional delete.
 */
export async function recheck(repo: Repo, victims: GcTag[], known: IndexChildren, signal?: AbortSignal): Promise<{ victims: GcTag[]; spared: GcTag[] }> {
  const now = await repo.list(signal);
  const names = new Map<string, string>();
  for (const e of now) if (e.desc) names.set(e.tag, e.desc.digest);
  const still: GcTag[] = [];
  const changed: GcTag[] = [];
  for (const v of victims) {
    const d = names.get(v.tag);
    if (d === v.digest) still.push(v);
    else if (d !== undefined) changed.push({ tag: v.tag, digest: d, reason: 'changed' });
  }
  const judged = new Set(still.map((v) => `${v.tag}\0${v.digest}`));
  const protectors: GcTag[] = [];
  for (const e of now) if (e.desc && !judged.has(`${e.tag}\0${e.desc.digest}`)) protectors.push({ tag: e.tag, digest: e.desc.digest });
  const r = await protect(repo.store, now, protectors, still, known, signal);
  return { victims: r.victims, spared: [...changed, ...r.spared] };
}
