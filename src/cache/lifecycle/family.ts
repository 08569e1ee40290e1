// A tag's family: the caches concurrent writers pushed to one tag, each kept
// under its own *member tag*, merged on read. Registries have no
// compare-and-swap on tags (two PUTs to one tag: the last wins), so writers
// that must not lose each other's records never write the same tag: a member
// tag is derived from the tag and the pushed manifest's digest, so equal
// pushes share a member and different pushes never collide. Merging the
// family is a pure function of its members, so any number of daemons that
// share no state compute the same merged cache, byte for byte.
// Tag grammar: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
import { createHash } from 'node:crypto';
import type { CacheGraph } from '../graph.js';
import type { LoadedCache } from '../import.js';

const MEMBER_PREFIX = 'bkm-';
/** 16 hex of sha256(tag): the family; 24 hex of the manifest digest: the member. 45 characters in all. */
const MEMBER_RE = /^bkm-([0-9a-f]{16})-([0-9a-f]{24})$/;

function familyId(tag: string): string {
  return createHash('sha256').update(tag, 'utf8').digest('hex').slice(0, 16);
}

/** The member tag a push of `manifestDigest` to `tag` is stored under. */
export function memberTag(tag: string, manifestDigest: string): string {
  const hex = manifestDigest.slice(manifestDigest.indexOf(':') + 1);
  return `${MEMBER_PREFIX}${familyId(tag)}-${hex.slice(0, 24)}`;
}

export function isMemberTag(tag: string): boolean {
  return MEMBER_RE.test(tag);
}

/** The member tags of `tag` among `tags`, sorted (tags of other families and plain tags are left out). */
export function familyOf(tags: readonly string[], tag: string): string[] {
  const id = familyId(tag);
  return tags.filter((t) => MEMBER_RE.exec(t)?.[1] === id).sort();
}

/** Whether a member tag names this manifest: a member whose content is not what its name says was not written by a gateway. */
export function memberNames(member: string, manifestDigest: string): boolean {
  const m = MEMBER_RE.exec(member);
  const hex = manifestDigest.slice(manifestDigest.indexOf(':') + 1);
  return !!m && hex.startsWith(m[2]!);
}

/** The newest result time of a loaded cache's records, in ms (-Infinity without results). */
export function newestResultMs(graph: CacheGraph): number {
  let max = -Infinity;
  for (const n of graph.nodes) {
    const t = n.result && n.result.layers.length ? Date.parse(n.result.createdAt) : NaN;
    if (!Number.isNaN(t) && t > max) max = t;
  }
  return max;
}

export interface FamilyMember {
  /** Member tag, or the family's own tag for a cache pushed there directly. */
  tag: string;
  loaded: LoadedCache;
  /** Its records alone (for ordering and expiry). */
  graph: CacheGraph;
  /** True for the family's own tag: the oldest, lowest-priority source. */
  base?: boolean;
}

/**
 * The merge order: the member with the newest result first (as `copy` gives
 * the first source precedence for a cache key, the newest push wins), equal
 * times by member tag; the tag itself (a cache pushed before the policy, or
 * the last merged result, which holds nothing its members do not) last.
 */
export function mergeOrder(members: readonly FamilyMember[]): FamilyMember[] {
  const newest = new Map(members.map((m) => [m, newestResultMs(m.graph)]));
  return [...members].sort((a, b) => {
    if (!!a.base !== !!b.base) return a.base ? 1 : -1;
    const d = newest.get(b)! - newest.get(a)!;
    if (d !== 0 && !Number.isNaN(d)) return d;
    return a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0;
  });
}

/** Whether every result of a member is older than `cutoffMs`: trim would drop all of it. */
export function expired(graph: CacheGraph, cutoffMs: number): boolean {
  const t = newestResultMs(graph);
  return t !== -Infinity && t < cutoffMs;
}
