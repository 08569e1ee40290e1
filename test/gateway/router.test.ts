import { describe, expect, it } from 'vitest';
import { isRepoName, route } from '../../src/gateway/router.js';

const D = 'sha256:' + 'a'.repeat(64);

describe('route', () => {
  it('parses the distribution endpoints', () => {
    expect(route('/v2/')).toEqual({ kind: 'ping' });
    expect(route('/token')).toEqual({ kind: 'token' });
    expect(route('/v2/_catalog')).toEqual({ kind: 'catalog' });
    expect(route('/v2/a/b/manifests/latest')).toEqual({ kind: 'manifest', repo: 'a/b', ref: 'latest' });
    expect(route(`/v2/a/manifests/${D}`)).toEqual({ kind: 'manifest', repo: 'a', ref: D });
    expect(route(`/v2/a/blobs/${D}`)).toEqual({ kind: 'blob', repo: 'a', digest: D });
    expect(route('/v2/a/blobs/uploads/')).toEqual({ kind: 'upload-start', repo: 'a' });
    expect(route('/v2/a/blobs/uploads/xyz')).toEqual({ kind: 'upload', repo: 'a', id: 'xyz' });
    expect(route('/v2/a/tags/list')).toEqual({ kind: 'tags', repo: 'a' });
    // Names may hold the words the routes use.
    expect(route('/v2/manifests/blobs/manifests/t')).toEqual({ kind: 'manifest', repo: 'manifests/blobs', ref: 't' });
  });

  it('refuses bad names and references without guessing', () => {
    for (const p of ['/v2/A/manifests/t', '/v2/a/../b/manifests/t', '/v2/a//b/manifests/t', '/v2/a/manifests/-bad', '/v2/.a/tags/list', `/v2/${'a'.repeat(256)}/tags/list`]) {
      expect(route(p), p).toBe('name-invalid');
    }
    expect(route('/other')).toBeUndefined();
    expect(route('/v2/a/unknown')).toBeUndefined();
  });

  it('isRepoName follows the grammar', () => {
    expect(isRepoName('cache/acme/app')).toBe(true);
    expect(isRepoName('cache/../x')).toBe(false);
    expect(isRepoName('Cache')).toBe(false);
  });
});

describe('digests in routes (src/oci/digest.ts decides)', () => {
  it('takes the algorithms the project hashes, nothing looser', () => {
    for (const d of ['sha512:' + 'b'.repeat(128), 'blake3:' + 'c'.repeat(64)]) expect(route(`/v2/a/manifests/${d}`)).toEqual({ kind: 'manifest', repo: 'a', ref: d });
    // Malformed digests are DIGEST_INVALID, as distribution answers, not a bad name.
    for (const d of ['sha256:' + 'a'.repeat(63), 'sha256:' + 'a'.repeat(65), 'md5:' + 'a'.repeat(32), 'sha256:' + 'A'.repeat(64), 'sha512:' + 'b'.repeat(64), 'sha256:']) {
      expect(route(`/v2/a/manifests/${d}`), d).toBe('digest-invalid');
    }
  });
});
