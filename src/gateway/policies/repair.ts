// repairOnRead: true. A cache served by tag is first checked against the
// repository (a HEAD per blob it names, verify.ts); when the repository lost a
// blob, the read serves the cache without the results whose layer chains name
// it — BuildKit then rebuilds those steps instead of failing the build with
// "blob not found" (moby/buildkit#2332). The repaired config and manifest are
// written upstream by digest first, so any daemon can serve them; the tag
// itself is left alone (a concurrent push to it must not be overwritten with
// an older, repaired cache) unless the repository merges, where the tag is
// only ever a best-effort copy of the merged family.
import { keepResults } from '../../cache/lifecycle/cache.js';
import { verifyManifest } from '../../cache/lifecycle/verify.js';
import type { GatewayContext } from '../context.js';
import type { ManifestRead } from '../upstream/types.js';
import { UpstreamRepoStore } from './store.js';
import { shapeOf, writeGraph } from './write.js';

/** HEADs in flight per repair check. */
const VERIFY_CONCURRENCY = 8;

export type RepairOutcome =
  /** Every blob is there: serve as is. */
  | { kind: 'intact' }
  /** Serve this instead; `dropped` results lost a blob. */
  | { kind: 'repaired'; manifest: ManifestRead; dropped: number; missing: number }
  /** Nothing can be kept (the config is gone, or every result lost a blob): a miss. */
  | { kind: 'lost'; missing: number };

export async function repairRead(ctx: GatewayContext, repo: string, m: ManifestRead, signal?: AbortSignal): Promise<RepairOutcome> {
  const store = new UpstreamRepoStore(ctx.upstream, repo);
  const desc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  const v = await verifyManifest(store, desc, { concurrency: VERIFY_CONCURRENCY, signal });
  if (v.report.ok) return { kind: 'intact' };
  const missing = v.report.missing.length + v.report.corrupt.length;
  if (!v.opened) return { kind: 'lost', missing };
  const { graph, dropped } = keepResults(v.opened.graph, (n) => !v.broken.has(n));
  const written = await writeGraph(store, graph, [v.opened.loaded], shapeOf(v.opened.loaded, ctx.cfg.imageManifestOnly), signal);
  if (!written) return { kind: 'lost', missing };
  return {
    kind: 'repaired',
    manifest: { mediaType: written.mediaType, digest: written.digest, bytes: written.bytes },
    dropped: dropped.filter((n) => v.broken.has(n)).length,
    missing,
  };
}
