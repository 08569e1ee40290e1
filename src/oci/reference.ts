// Image references as Docker and BuildKit write them: host[:port]/path[:tag][@digest].
// Grammar: https://github.com/distribution/reference/blob/main/reference.go
// Normalization (docker.io, library/): https://github.com/distribution/reference/blob/main/normalize.go
// Pure: no I/O, so the CLI and the cache spec parser can use it freely.
import { invalidArgument } from '../errors.js';
import { parseDigest } from './digest.js';

/** The registry name Docker Hub references normalize to. */
export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's registry API actually lives (docker.io itself is a website). */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
// Old spellings of Docker Hub that must compare equal to docker.io.
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

// A path component: lowercase alphanumerics joined by '.', '_', '__' or any run of '-'.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// A domain: dot-separated labels (or a bracketed IPv6 literal), then an optional port.
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
// reference.go's NameTotalLengthMax: the whole name, domain included.
const NAME_MAX = 255;

export interface Reference {
  /** Normalized registry host[:port]; "docker.io" for Docker Hub. */
  registry: string;
  /** Repository path inside the registry, e.g. "library/alpine". */
  repository: string;
  tag?: string;
  digest?: string;
  /** The normalized, fully qualified form, e.g. "docker.io/library/alpine:latest". */
  toString(): string;
}

// "user:secret@host/repo" is not a reference, but people paste URLs with
// credentials in them: never echo that part back in an error.
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*:[^/@]*@/i;

function fail(s: string, why: string): never {
  const shown = s.replace(USERINFO, '$1<redacted>@');
  throw invalidArgument(`invalid reference ${JSON.stringify(shown)}: ${why}`, { reason: 'invalid-reference' });
}

class ParsedReference implements Reference {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag?: string,
    readonly digest?: string,
  ) {}

  toString(): string {
    let s = `${this.registry}/${this.repository}`;
    if (this.tag) s += `:${this.tag}`;
    if (this.digest) s += `@${this.digest}`;
    return s;
  }
}

/**
 * Splits "name" into registry and repository the way Docker's
 * splitDockerDomain does: the first component is a registry only when it
 * looks like one (has '.' or ':', or is "localhost", or has uppercase
 * letters, which repositories never do); otherwise the name is on Docker Hub.
 */
function splitDomain(name: string): { registry: string; repository: string } {
  const i = name.indexOf('/');
  const first = i < 0 ? '' : name.slice(0, i);
  let registry: string;
  let repository: string;
  if (i < 0 || (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first === first.toLowerCase())) {
    registry = DOCKER_HUB;
    repository = name;
  } else {
    registry = first;
    repository = name.slice(i + 1);
  }
  if (DOCKER_HUB_ALIASES.has(registry)) registry = DOCKER_HUB;
  // Official images live under library/ on Docker Hub.
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository };
}

/**
 * Parses a Docker image reference, normalizing Docker Hub names and adding
 * ":latest" when neither a tag nor a digest is given. Throws an
 * INVALID_ARGUMENT BkError on anything the grammar rejects.
 */
export function parseReference(s: string): Reference {
  const ref = parseReferenceLoose(s);
  if (!ref.tag && !ref.digest) return new ParsedReference(ref.registry, ref.repository, 'latest');
  return ref;
}

/**
 * Like parseReference but leaves a missing tag missing. Cache specs use this
 * when the tag is supplied separately, or for repository-only names.
 */
export function parseReferenceLoose(s: string): Reference {
  if (typeof s !== 'string' || s === '') fail(String(s), 'empty');
  if (s !== s.trim()) fail(s, 'surrounding whitespace');

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch {
      fail(s, 'bad digest');
    }
  }

  // A tag is the text after the last ':' that is not followed by '/'
  // (a ':' before a '/' separates a port, as in localhost:5000/repo).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.slice(colon + 1).includes('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(s, `bad tag ${JSON.stringify(tag)}`);
  }

  const name = rest;
  if (name === '') fail(s, 'empty name');
  if (name.length > NAME_MAX) fail(s, `name longer than ${NAME_MAX} characters`);
  const { registry, repository } = splitDomain(name);
  if (!DOMAIN.test(registry)) fail(s, `bad registry ${JSON.stringify(registry)}`);
  if (repository === '') fail(s, 'empty repository');
  for (const part of repository.split('/')) {
    if (part !== part.toLowerCase()) fail(s, 'repository name must be lowercase');
    if (!PATH_COMPONENT.test(part)) fail(s, `bad path component ${JSON.stringify(part)}`);
  }
  return new ParsedReference(registry, repository, tag, digest);
}

/** The host to send registry API requests to: Docker Hub's API host for docker.io. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

/** Validates a tag on its own (for `tag()` calls), INVALID_ARGUMENT when bad. */
export function validateTag(tag: string): string {
  if (typeof tag !== 'string' || !TAG.test(tag)) {
    throw invalidArgument(`invalid tag ${JSON.stringify(tag)}`, { reason: 'invalid-tag' });
  }
  return tag;
}
