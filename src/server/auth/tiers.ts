// The two-tier cache policy: a shared global cache that admin builds write and
// everyone reads, and one cache per tenant. The daemon's config names them with
// templates (per tenant, or a default):
//
//   tiers:
//     global: registry.internal/cache/global/{name}
//     tenant: registry.internal/cache/{tenant}/{name}
//
// and a client names a cache by `name` alone, with the spec
//   type=tier,name=NAME[,tag=TAG][,tier=tenant|global][,export options]
// Imports (and Inspect, FetchBlob, Copy sources) get the fallback chain
// [tenant, global]; exports go to the tenant tier, or to the global tier with
// tier=global, which only a token with push there can write. Tiers only map
// names to refs: every ref they produce is then authorized like any other.
import type { CacheSpec } from '../../cache/spec.js';
import { failedPrecondition, invalidArgument } from '../../errors.js';
import { parseReference, parseReferenceLoose, validateTag } from '../../oci/reference.js';
import { parsePattern, type Pattern } from './policy.js';

export const TIER_TYPE = 'tier';
export type TierName = 'tenant' | 'global';

export interface TierTemplates {
  global: string;
  tenant: string;
}

export interface TierSettings {
  /** Templates for tenants without their own entry. */
  default?: TierTemplates;
  tenants: Record<string, TierTemplates>;
}

// A cache name: registry path components ("app", "team/app"); never '..', never a leading '/'.
const NAME_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const NAME_MAX = 128;

/**
 * Checks a template when the config is read: a reference without tag or
 * digest whose last path segment is exactly {name}, and whose host holds no
 * placeholder (a tenant must not be able to pick the registry).
 */
export function checkTemplate(t: string, where: string): string {
  if (!t.endsWith('/{name}') || t.indexOf('{name}') !== t.length - '{name}'.length) {
    throw invalidArgument(`${where}: the template must end with /{name} and use it once`, { reason: 'invalid-config' });
  }
  const host = t.slice(0, t.indexOf('/'));
  if (host.includes('{')) throw invalidArgument(`${where}: the registry host cannot hold a placeholder`, { reason: 'invalid-config' });
  if (/\{(?!name\}|tenant\})/.test(t)) throw invalidArgument(`${where}: only {tenant} and {name} are placeholders`, { reason: 'invalid-config' });
  const sample = fill(t, 'tenant0', 'name0');
  let ref;
  try {
    ref = parseReferenceLoose(sample);
  } catch (err) {
    throw invalidArgument(`${where}: ${(err as Error).message}`, { reason: 'invalid-config' });
  }
  if (ref.tag || ref.digest) throw invalidArgument(`${where}: a template names a repository; the tag comes from the spec`, { reason: 'invalid-config' });
  if (`${ref.registry}/${ref.repository}` !== sample) {
    throw invalidArgument(`${where}: write the template fully qualified (${ref.registry}/${ref.repository} for ${sample})`, { reason: 'invalid-config' });
  }
  return t;
}

function fill(t: string, tenant: string, name: string): string {
  return t.replaceAll('{tenant}', tenant).replace('{name}', name);
}

export function templatesFor(settings: TierSettings | undefined, tenant: string | undefined): TierTemplates | undefined {
  if (!settings) return undefined;
  return (tenant !== undefined ? settings.tenants[tenant] : undefined) ?? settings.default;
}

/**
 * The repository pattern a template covers for one tenant: {name} becomes
 * '**' (any cache name). `bkcache token` mints default grants from these.
 */
export function templatePattern(t: string, tenant: string): Pattern {
  return parsePattern(fill(t, tenant, '**'));
}

export function isTierSpec(spec: CacheSpec): boolean {
  return spec.type === TIER_TYPE;
}

export interface Expanded {
  /** Concrete registry specs, in fallback order (one for exports). */
  specs: CacheSpec[];
  /** For an export: the other tier, a place blobs may be mounted from when the caller may pull it. */
  siblings: CacheSpec[];
}

/**
 * Expands `type=tier` into registry specs. Decided from the spec, the config
 * and the tenant only: no store is consulted.
 */
export function expandTier(spec: CacheSpec, settings: TierSettings | undefined, tenant: string | undefined, mode: 'import' | 'export'): Expanded {
  const { name, tag, tier, ...rest } = spec.attrs;
  const t = templatesFor(settings, tenant);
  if (!t) throw invalidArgument('type=tier needs tiers in the daemon config', { reason: 'invalid-spec' });
  if (!name || name.length > NAME_MAX || !NAME_RE.test(name)) {
    throw invalidArgument(`type=tier needs name=NAME: lowercase path components (${JSON.stringify(name ?? '')} is not one)`, { reason: 'invalid-spec' });
  }
  if (tag !== undefined) validateTag(tag);
  if (tier !== undefined && tier !== 'tenant' && tier !== 'global') throw invalidArgument(`tier=${tier}: want tenant or global`, { reason: 'invalid-spec' });
  const needsTenant = (s: string) => s.includes('{tenant}');
  const ref = (which: TierName): CacheSpec => {
    const tmpl = t[which];
    if (needsTenant(tmpl) && tenant === undefined) {
      throw invalidArgument(`the ${which} tier of type=tier is per tenant: it needs an authenticated caller`, { reason: 'invalid-spec' });
    }
    const r = parseReference(`${fill(tmpl, tenant ?? '', name)}:${tag ?? 'latest'}`);
    return { type: 'registry', attrs: { ...rest, ref: r.toString() } };
  };
  const tenantSpec = ref('tenant');
  const globalSpec = ref('global');
  // A tenant whose id makes its tier the global one (say, a tenant called "global") would write
  // the global cache through a tenant export. Refuse instead of guessing which one was meant.
  if (tenantSpec.attrs['ref'] === globalSpec.attrs['ref']) {
    throw failedPrecondition('this tenant\'s tier and the global tier are the same repository; fix the tiers config', { reason: 'tier-collision' });
  }
  if (mode === 'export') {
    return tier === 'global' ? { specs: [globalSpec], siblings: [tenantSpec] } : { specs: [tenantSpec], siblings: [globalSpec] };
  }
  if (tier === 'global') return { specs: [globalSpec], siblings: [] };
  if (tier === 'tenant') return { specs: [tenantSpec], siblings: [] };
  return { specs: [tenantSpec, globalSpec], siblings: [] };
}
