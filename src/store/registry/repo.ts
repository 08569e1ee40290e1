// What the blob and manifest operations share: one repository on one
// registry, the client that talks to it, and the URL layout of the
// distribution API. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#endpoints
import { repositoryScope } from './auth/challenge.js';
import type { RegistryClient } from './client.js';
import type { Endpoint } from './hosts.js';
import type { Semaphore } from '../../semaphore.js';

export interface RepoContext {
  client: RegistryClient;
  endpoint: Endpoint;
  repository: string;
  /** "registry:host/repo", for messages. */
  location: string;
  /** Caps blob transfers to this host. */
  limiter: Semaphore;
  maxManifestBytes: number;
}

export function apiUrl(ctx: RepoContext, kind: 'blobs' | 'manifests', ref: string): URL {
  return new URL(`${ctx.endpoint.origin}/v2/${ctx.repository}/${kind}/${ref}`);
}

export function uploadsUrl(ctx: RepoContext, query = ''): URL {
  return new URL(`${ctx.endpoint.origin}/v2/${ctx.repository}/blobs/uploads/${query}`);
}

export const pullScope = (ctx: RepoContext) => [repositoryScope(ctx.repository, 'pull')];
export const pushScope = (ctx: RepoContext) => [repositoryScope(ctx.repository, 'pull', 'push')];
/** DELETE needs the "delete" action on registries that check it (distribution ≥ 2.7 with token auth). */
export const deleteScope = (ctx: RepoContext) => [repositoryScope(ctx.repository, 'delete', 'pull', 'push')];
