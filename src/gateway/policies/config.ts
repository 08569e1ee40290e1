// `gateway.policies`: what the gateway does with the caches of the
// repositories a pattern names, first match wins.
//
//   gateway:
//     policies:
//       - { repositories: "cache/**", merge: true, repairOnRead: true, maxAge: 14d, maxSize: 20GiB }
//     metricsRepositoryLabel: true   # /metrics per repository too (bounded; off by default)
//
// Patterns are matched against gateway repository names with the grammar of
// token grants (src/server/auth/policy.ts): `*` inside a segment, `**` for
// one or more whole segments.
import { invalidArgument } from '../../errors.js';
import { parseDuration, parseSize } from '../../cache/lifecycle/units.js';
import { matchPattern, parsePattern, type Pattern } from '../../server/auth/policy.js';

export interface RepositoryPolicy {
  repositories: Pattern;
  /** Pushes of a cache to a tag add to what the tag holds instead of replacing it. */
  merge: boolean;
  /** Reads of a cache whose blobs the repository lost serve it without the broken chains. */
  repairOnRead: boolean;
  /** Milliseconds; applied on every merge. */
  maxAge?: number;
  /** Bytes; applied on every merge. */
  maxSize?: number;
}

const invalid = (msg: string) => invalidArgument(msg, { reason: 'invalid-config' });
const KNOWN = ['repositories', 'merge', 'repairOnRead', 'maxAge', 'maxSize'];
/** Policies are matched on every manifest request: a bounded list. */
const MAX_POLICIES = 256;

function bool(v: unknown, where: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw invalid(`${where} must be true or false`);
  return v;
}

function parseOne(v: unknown, i: number): RepositoryPolicy {
  const where = `gateway.policies[${i}]`;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${where} must be a mapping`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) throw invalid(`${where}: unknown key ${JSON.stringify(k)} (known: ${KNOWN.join(', ')})`);
  if (typeof o.repositories !== 'string') throw invalid(`${where}.repositories must be a pattern like "cache/**"`);
  let repositories: Pattern;
  try {
    repositories = parsePattern(o.repositories);
  } catch (err) {
    throw invalid(`${where}.repositories: ${(err as Error).message}`);
  }
  const out: RepositoryPolicy = { repositories, merge: bool(o.merge, `${where}.merge`), repairOnRead: bool(o.repairOnRead, `${where}.repairOnRead`) };
  // YAML reads `14d` and `20GiB` as strings; bare numbers are milliseconds and bytes.
  const num = (x: unknown, parse: (s: string) => number, key: string): number => {
    if (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) return x;
    if (typeof x === 'string') {
      try {
        return parse(x);
      } catch (err) {
        throw invalid(`${where}.${key}: ${(err as Error).message}`);
      }
    }
    throw invalid(`${where}.${key} must be like ${key === 'maxAge' ? '14d' : '20GiB'}`);
  };
  if (o.maxAge !== undefined) out.maxAge = num(o.maxAge, parseDuration, 'maxAge');
  if (o.maxSize !== undefined) out.maxSize = num(o.maxSize, parseSize, 'maxSize');
  return out;
}

export function parsePolicies(v: unknown): RepositoryPolicy[] {
  if (!Array.isArray(v)) throw invalid('gateway.policies must be a list');
  if (v.length > MAX_POLICIES) throw invalid(`gateway.policies: at most ${MAX_POLICIES} entries`);
  return v.map(parseOne);
}

/** The first policy whose pattern names `repo`. */
export function policyFor(policies: readonly RepositoryPolicy[] | undefined, repo: string): RepositoryPolicy | undefined {
  return policies?.find((p) => matchPattern(p.repositories, repo));
}

/** Whether a policy trims (on every merge). */
export function trims(p: RepositoryPolicy): boolean {
  return p.maxAge !== undefined || p.maxSize !== undefined;
}
