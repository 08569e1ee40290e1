// What tests do to a registry behind gc's, trim's or repair's back: push a
// manifest to a tag, and look at what a tag names.
import { expect } from 'vitest';
import { MANIFEST_MEDIA_TYPES } from '../../src/oci/media-types.js';
import type { StartedRegistry } from './registry.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** Points repo:tag at the manifest `digest` (what a concurrent push of that cache does). */
export async function retag(reg: StartedRegistry, repo: string, digest: string, tag: string): Promise<void> {
  const got = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`, { headers: { accept: ACCEPT } });
  const body = Buffer.from(await got.arrayBuffer());
  const put = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': got.headers.get('content-type')! }, body });
  expect(put.status).toBe(201);
}

/** The digest repo:tag names, or undefined when there is no such tag. */
export async function tagDigest(reg: StartedRegistry, repo: string, tag: string): Promise<string | undefined> {
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  return r.status === 200 ? r.headers.get('docker-content-digest')! : undefined;
}
