// Two tiers on the gateway (the daemon's `tiers` config, src/server/auth/tiers.ts):
// a GET or HEAD of a tag in the caller's tenant-tier repository that misses
// falls back to the same cache name and tag in the global tier, when the
// caller may pull it there. Decided from the config, the tenant and the
// request; pushes never fall through.
import { templatesFor, type TierSettings } from '../server/auth/tiers.js';
import type { Upstream } from './upstream/types.js';

export type TierName = 'tenant' | 'global';

export interface TierOf {
  tier: TierName;
  /** For a tenant-tier repository: the gateway repository of the same cache in the global tier. */
  global?: string;
}

const fill = (t: string, tenant: string, name: string) => t.replaceAll('{tenant}', tenant).replace('{name}', name);

/** Which tier a gateway repository is for this tenant, if any. */
export function tierOf(settings: TierSettings | undefined, tenant: string | null, upstream: Upstream, repo: string): TierOf | undefined {
  if (!settings || tenant === null) return undefined;
  const t = templatesFor(settings, tenant);
  if (!t) return undefined;
  const name = upstream.nameOf(repo);
  const tenantHead = fill(t.tenant, tenant, '');
  if (name.startsWith(tenantHead) && name.length > tenantHead.length) {
    const cache = name.slice(tenantHead.length);
    const global = upstream.repoOf(fill(t.global, tenant, cache));
    return { tier: 'tenant', ...(global !== undefined && global !== repo ? { global } : {}) };
  }
  const globalHead = fill(t.global, tenant, '');
  if (name.startsWith(globalHead) && name.length > globalHead.length) return { tier: 'global' };
  return undefined;
}
