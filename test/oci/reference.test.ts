// Reference parsing against the cases distribution/reference's own tests
// and Docker's normalization settle: https://github.com/distribution/reference
import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { apiHost, parseReference, parseReferenceLoose, validateTag } from '../../src/oci/reference.js';

const D = 'sha256:' + 'a'.repeat(64);

describe('parseReference', () => {
  it.each([
    ['alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['alpine:3.19', 'docker.io', 'library/alpine', '3.19', undefined],
    ['library/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['index.docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['registry-1.docker.io/user/app:v1', 'docker.io', 'user/app', 'v1', undefined],
    ['user/app', 'docker.io', 'user/app', 'latest', undefined],
    ['ghcr.io/org/team/cache:buildcache', 'ghcr.io', 'org/team/cache', 'buildcache', undefined],
    ['localhost/app', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/app:t', 'localhost:5000', 'app', 't', undefined],
    ['127.0.0.1:5000/a/b', '127.0.0.1:5000', 'a/b', 'latest', undefined],
    ['[::1]:5000/a', '[::1]:5000', 'a', 'latest', undefined],
    ['Registry.Example.com/a', 'Registry.Example.com', 'a', 'latest', undefined],
    ['reg.io/a_b/c__d/e-f/g--h.i:T_1.0-x', 'reg.io', 'a_b/c__d/e-f/g--h.i', 'T_1.0-x', undefined],
    [`reg.io/a@${D}`, 'reg.io', 'a', undefined, D],
    [`reg.io/a:t@${D}`, 'reg.io', 'a', 't', D],
    [`alpine@${D}`, 'docker.io', 'library/alpine', undefined, D],
  ])('%s', (input, registry, repository, tag, digest) => {
    const r = parseReference(input);
    expect({ registry: r.registry, repository: r.repository, tag: r.tag, digest: r.digest }).toEqual({ registry, repository, tag, digest });
  });

  it('prints the normalized form', () => {
    expect(parseReference('alpine').toString()).toBe('docker.io/library/alpine:latest');
    expect(String(parseReference(`h:1/a:t@${D}`))).toBe(`h:1/a:t@${D}`);
  });

  it('leaves the tag out in the loose variant', () => {
    expect(parseReferenceLoose('reg.io/a').tag).toBeUndefined();
    expect(parseReferenceLoose('reg.io/a:x').tag).toBe('x');
  });

  it.each([
    '',
    ' alpine',
    'Alpine',
    'reg.io/UPPER',
    'reg.io/a//b',
    'reg.io/-a',
    'reg.io/a-',
    'reg.io/a___b',
    'reg.io/a:',
    'reg.io/a:-tag',
    `reg.io/a:${'t'.repeat(129)}`,
    'reg.io/a@sha256:abc',
    'reg.io/a@md5:' + 'a'.repeat(32),
    'reg.io/',
    ':tag',
    '-bad.io/a',
    'reg.io:port/a',
    `reg.io/${'a'.repeat(256)}`,
  ])('rejects %j with INVALID_ARGUMENT', (input) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('INVALID_ARGUMENT');
  });
});

describe('apiHost and validateTag', () => {
  it('sends Docker Hub requests to its API host', () => {
    expect(apiHost('docker.io')).toBe('registry-1.docker.io');
    expect(apiHost('ghcr.io')).toBe('ghcr.io');
  });

  it('validates tags alone', () => {
    expect(validateTag('v1.2_3-x')).toBe('v1.2_3-x');
    expect(() => validateTag('bad tag')).toThrow(BkError);
    expect(() => validateTag('.x')).toThrow(BkError);
  });
});

describe('error messages', () => {
  it('never echo credentials pasted into a reference', () => {
    for (const input of ['user:s3cret@reg.io/a', 'https://user:s3cret@reg.io/a']) {
      let msg = '';
      try {
        parseReference(input);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toContain('invalid reference');
      expect(msg).not.toContain('s3cret');
    }
  });
});
