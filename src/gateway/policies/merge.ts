// merge: true. A cache pushed to tag T is stored under its own member tag
// (family.ts), so concurrent writers never overwrite each other; a read of T
// merges T's family — every member, then T itself as the oldest source — in a
// fixed order (newest result first, as `copy` gives its first source
// precedence), trims it with the repository's maxAge and maxSize, writes the
// merged config and manifest by digest, and points T at it best-effort.
// The merge is a pure function of the family, so two daemons that share no
// state serve the same digest. See README "Policies".
import { BkError } from '../../errors.js';
import { CacheGraph } from '../../cache/graph.js';
import { addToGraph, loadCache } from '../../cache/import.js';
import { expired, familyOf, mergeOrder, type FamilyMember } from '../../cache/lifecycle/family.js';
import { planTrim } from '../../cache/lifecycle/trim.js';
import { cacheManifestOf } from '../cache-shape.js';
import type { GatewayContext } from '../context.js';
import type { ManifestRead } from '../upstream/types.js';
import { trims, type RepositoryPolicy } from './config.js';
import { ACCEPT, UpstreamRepoStore } from './store.js';
import { bestEffortTag, shapeOf, writeGraph } from './write.js';

/** Members read per merge at most: a family is bounded (memory, time) whatever the upstream lists. */
export const MAX_MEMBERS = 512;
/** Manifest and config bytes one merge holds at most (each is at most 16 MiB; BuildKit's own limit is 1 MiB). */
export const MAX_FAMILY_BYTES = 64 << 20;

export interface MergeOutcome {
  manifest: ManifestRead;
  members: number;
  /** Results the policy's trim dropped. */
  trimmed: number;
}

/** Codes that mean "this member is not a usable cache" for everyone alike: skipped, so every daemon skips it. */
function unusable(err: unknown): boolean {
  return err instanceof BkError && ['NOT_FOUND', 'INVALID_ARGUMENT', 'DATA_LOSS', 'FAILED_PRECONDITION'].includes(err.code);
}

/** The member tags of `tag` the upstream lists now, sorted, at most MAX_MEMBERS. */
export async function familyNames(ctx: GatewayContext, repo: string, tag: string, signal?: AbortSignal): Promise<string[]> {
  return familyOf((await ctx.upstream.tags(repo, signal)) ?? [], tag).slice(0, MAX_MEMBERS);
}

/**
 * The merged cache of `tag` (of the members `listed`, or listed now), written upstream; undefined when there is no
 * family to merge (no member tags) or when T holds something that is not a
 * cache (that passes through untouched), or when every result was trimmed.
 */
export async function mergeFamily(
  ctx: GatewayContext,
  repo: string,
  tag: string,
  policy: RepositoryPolicy,
  signal?: AbortSignal,
  listed?: string[],
): Promise<MergeOutcome | 'empty' | undefined> {
  const names = listed ?? (await familyNames(ctx, repo, tag, signal));
  if (names.length === 0) return undefined;
  const base = await ctx.upstream.getManifest(repo, tag, ACCEPT, signal);
  if (base && !cacheManifestOf(base.bytes)) return undefined;
  const store = new UpstreamRepoStore(ctx.upstream, repo);
  const cutoff = policy.maxAge !== undefined ? Date.now() - policy.maxAge : undefined;
  const members: FamilyMember[] = [];
  let held = 0;
  const load = async (name: string, isBase: boolean) => {
    try {
      const desc = await store.resolve(name, { signal });
      const loaded = await loadCache(store, desc, { signal });
      // Only caches join a family: an image under a member-like tag (its inline cache) does not.
      if (loaded.kind === 'inline') return;
      // Past the budget the rest are left out, in name order, the same way on every daemon.
      held += desc.size + (loaded.config?.size ?? 0);
      if (held > MAX_FAMILY_BYTES) {
        ctx.log.info('gateway merge: family over the size budget; leaving out a member', { repository: repo, tag: name });
        return;
      }
      const graph = new CacheGraph();
      addToGraph(graph, loaded);
      // Wholly older than maxAge: trim would drop every record of it anyway.
      if (cutoff !== undefined && expired(graph, cutoff)) return;
      members.push({ tag: name, loaded, graph, base: isBase });
    } catch (err) {
      if (!unusable(err)) throw err;
      ctx.log.info('gateway merge: skipping a family member that is not a usable cache', { repository: repo, tag: name, error: (err as Error).message.split('\n')[0] });
    }
  };
  for (const name of names) await load(name, false);
  if (base) await load(tag, true);
  const ordered = mergeOrder(members);
  if (ordered.length === 0) return 'empty';
  let graph = new CacheGraph();
  for (const m of ordered) addToGraph(graph, m.loaded);
  let trimmed = 0;
  if (trims(policy)) {
    const plan = planTrim(graph, { maxAge: policy.maxAge, maxSize: policy.maxSize });
    graph = plan.graph;
    trimmed = plan.dropped.length;
  }
  const written = await writeGraph(
    store,
    graph,
    ordered.map((m) => m.loaded),
    shapeOf(ordered[0]!.loaded, ctx.cfg.imageManifestOnly),
    signal,
  );
  if (!written) return 'empty';
  const manifest: ManifestRead = { mediaType: written.mediaType, digest: written.digest, bytes: written.bytes };
  await bestEffortTag(ctx, repo, tag, manifest, base?.digest, signal);
  return { manifest, members: ordered.length, trimmed };
}
