// Where the policies meet the manifest handlers (manifests.ts calls these
// hooks and nothing else): which tag a cache push lands on, and what a read
// of a tag serves. Reads of one tag on one daemon that list the same members
// share one merge (single flight), so a burst of pulls costs one merge, and a
// read after a completed push never joins a merge that lacks that push (its
// member list differs). The shared merge is not tied to the first caller's
// connection, so that caller going away fails no one else.
import { isDigest } from '../../oci/digest.js';
import { memberTag } from '../../cache/lifecycle/family.js';
import { cacheManifestOf } from '../cache-shape.js';
import type { Call, GatewayContext } from '../context.js';
import type { ManifestRead } from '../upstream/types.js';
import { policyFor } from './config.js';
import { familyNames, mergeFamily, type MergeOutcome } from './merge.js';
import { repairRead } from './repair.js';

const inflight = new Map<string, Promise<MergeOutcome | 'empty' | undefined>>();

function merged(ctx: GatewayContext, repo: string, tag: string, names: string[], run: () => Promise<MergeOutcome | 'empty' | undefined>) {
  // Keyed by the upstream name (two gateways in one process never share a merge) and the members.
  const key = `${ctx.upstream.nameOf(repo)}:${tag}:${names.join(',')}`;
  let p = inflight.get(key);
  if (!p) {
    p = run().finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p;
}

/** The tag a pushed manifest is stored under: its member tag when the repository merges and it is a cache pushed by tag. */
export function putTarget(ctx: GatewayContext, repo: string, ref: string, pushedDigest: string, isCache: boolean): string {
  if (isDigest(ref) || !isCache || !policyFor(ctx.cfg.policies, repo)?.merge) return ref;
  return memberTag(ref, pushedDigest);
}

/** After a merge push: merge the family now, so the tag is fresh for readers that bypass the gateway. Never fails the push. */
export async function afterPut(ctx: GatewayContext, call: Call, repo: string, ref: string, target: string): Promise<void> {
  if (target === ref) return;
  try {
    await readTag(ctx, call, repo, ref, '');
  } catch (err) {
    ctx.log.info('gateway merge after push failed; the next read merges again', { repository: repo, tag: ref, error: (err as Error).message.split('\n')[0] });
  }
}

/** A manifest read by tag (or digest) under the repository's policy; undefined when absent. */
export async function readTag(ctx: GatewayContext, call: Call, repo: string, ref: string, accept: string): Promise<ManifestRead | undefined> {
  const policy = isDigest(ref) ? undefined : policyFor(ctx.cfg.policies, repo);
  if (!policy) return ctx.upstream.getManifest(repo, ref, accept, call.signal);
  let m: ManifestRead | undefined;
  let fromMerge = false;
  if (policy.merge) {
    const names = await familyNames(ctx, repo, ref, call.signal);
    const r = names.length ? await merged(ctx, repo, ref, names, () => mergeFamily(ctx, repo, ref, policy, undefined, names)) : undefined;
    if (r === 'empty') return undefined;
    if (r) {
      ctx.metrics.policy.event(call, 'merge');
      if (r.trimmed > 0) ctx.metrics.policy.event(call, 'trim');
      m = r.manifest;
      fromMerge = true;
    }
  }
  m ??= await ctx.upstream.getManifest(repo, ref, accept, call.signal);
  if (!m || !policy.repairOnRead || !cacheManifestOf(m.bytes)) return m;
  const r = await repairRead(ctx, repo, m, call.signal);
  if (r.kind === 'intact') return m;
  ctx.metrics.policy.event(call, 'repair');
  ctx.log.info('gateway repair on read', { repository: repo, tag: ref, missing: r.missing, dropped: r.kind === 'repaired' ? r.dropped : 'all' });
  if (r.kind === 'lost') return undefined;
  // A merged tag is only a best-effort copy of its family: the repaired merge may replace it.
  if (fromMerge) await ctx.upstream.putManifest(repo, ref, r.manifest, call.signal).catch(() => undefined);
  return r.manifest;
}
