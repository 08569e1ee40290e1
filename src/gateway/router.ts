// Routes of the distribution API, parsed from the request path alone.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#endpoints
// Digests are checked by the project's one strict parser (src/oci/digest.ts):
// the algorithms the project hashes, each with its exact lowercase hex length.
import { isDigest } from '../oci/digest.js';

export type Route =
  | { kind: 'ping' }
  | { kind: 'token' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; repo: string; ref: string }
  | { kind: 'blob'; repo: string; digest: string }
  | { kind: 'upload-start'; repo: string }
  | { kind: 'upload'; repo: string; id: string }
  | { kind: 'tags'; repo: string };

// <name> of the spec: path components [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by '/'.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = `${COMPONENT}(?:/${COMPONENT})*`;
const MAX_NAME = 255;
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

const REPO_ROUTE = new RegExp(`^/v2/(${NAME})/(manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|tags/list)$`);

/**
 * The route; 'name-invalid' for a path that is a repository route with a bad name or tag,
 * 'digest-invalid' for a manifest reference that is a malformed digest (it has the ':' no tag has:
 * an unknown algorithm, uppercase or a wrong number of hex digits), as distribution answers; undefined otherwise.
 */
export function route(pathname: string): Route | 'name-invalid' | 'digest-invalid' | undefined {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'ping' };
  if (pathname === '/token') return { kind: 'token' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  if (!pathname.startsWith('/v2/')) return undefined;
  const m = REPO_ROUTE.exec(pathname);
  if (!m) return /\/(manifests|blobs|tags)\//.test(pathname) ? 'name-invalid' : undefined;
  const repo = m[1]!;
  if (repo.length > MAX_NAME) return 'name-invalid';
  const rest = m[2]!;
  if (rest === 'tags/list') return { kind: 'tags', repo };
  if (rest.startsWith('manifests/')) {
    const ref = rest.slice('manifests/'.length);
    if (TAG_RE.test(ref) || isDigest(ref)) return { kind: 'manifest', repo, ref };
    return rest.includes(':') ? 'digest-invalid' : 'name-invalid';
  }
  if (rest === 'blobs/uploads/') return { kind: 'upload-start', repo };
  if (rest.startsWith('blobs/uploads/')) return { kind: 'upload', repo, id: rest.slice('blobs/uploads/'.length) };
  const digest = rest.slice('blobs/'.length);
  return { kind: 'blob', repo, digest };
}

const NAME_ONLY = new RegExp(`^${NAME}$`);

export function isRepoName(s: string): boolean {
  return s.length <= MAX_NAME && NAME_ONLY.test(s);
}
