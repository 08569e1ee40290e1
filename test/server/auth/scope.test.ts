// Specs → resource names, and type=tier → the refs of the two tiers.
import { describe, expect, it } from 'vitest';
import { localName, refuseDaemonOnlyAttrs, registryName, specResource } from '../../../src/server/auth/scope.js';
import { checkTemplate, expandTier, templatePattern, type TierSettings } from '../../../src/server/auth/tiers.js';

const ROOT = '/srv/bk/root';

describe('resource names', () => {
  it('registry: host and repository, normalized; tag and digest dropped', () => {
    expect(registryName('reg.io:5000/cache/acme/app:v1')).toBe('reg.io:5000/cache/acme/app');
    expect(registryName('reg.io/cache/acme/app@sha256:' + 'a'.repeat(64))).toBe('reg.io/cache/acme/app');
    expect(registryName('alpine')).toBe('docker.io/library/alpine');
    expect(registryName('index.docker.io/acme/app')).toBe('docker.io/acme/app');
    // "local/x" and "file/x" as references are Docker Hub repositories, never local names.
    expect(registryName('local/cache/x')).toBe('docker.io/local/cache/x');
    expect(registryName('file/etc')).toBe('docker.io/file/etc');
    for (const bad of ['reg.io/cache/../x', 'reg.io/Cache/x', 'reg.io/cache/', 'reg.io//x', 'reg.io/./x']) expect(() => registryName(bad), bad).toThrow();
  });

  it('local: inside the root relative to it, outside absolute; traversal is resolved first', () => {
    expect(localName(ROOT, ROOT)).toBe('local');
    expect(localName('cache/a/app', ROOT)).toBe('local/cache/a/app');
    expect(localName('cache/b/../a/app/', ROOT)).toBe('local/cache/a/app');
    expect(localName('./cache//a', ROOT)).toBe('local/cache/a');
    expect(localName('../rootx/a', ROOT)).toBe('file/srv/bk/rootx/a');
    expect(localName('../../..', ROOT)).toBe('file');
    expect(localName('/srv/bk/root/../root/cache', ROOT)).toBe('local/cache');
    expect(localName('/var/lib/buildkit', ROOT)).toBe('file/var/lib/buildkit');
    expect(localName('..foo', ROOT)).toBe('local/..foo'); // a directory called "..foo" is inside
    expect(() => localName('a\0b', ROOT)).toThrow(/NUL/);
  });

  it('specs: by type, after resolveSpec put local paths in src/dest', () => {
    expect(specResource({ type: 'registry', attrs: { ref: 'reg.io/cache/a/app' } }, ROOT, 'export')).toBe('reg.io/cache/a/app');
    expect(specResource({ type: 'local', attrs: { src: `${ROOT}/cache/a` } }, ROOT, 'import')).toBe('local/cache/a');
    expect(specResource({ type: 'local', attrs: { dest: '/tmp/x' } }, ROOT, 'export')).toBe('file/tmp/x');
    expect(() => specResource({ type: 'nope', attrs: {} }, ROOT, 'import')).toThrow(/unsupported/);
    expect(() => specResource({ type: 'registry', attrs: {} }, ROOT, 'import')).toThrow(/ref=/);
    // The place checked is the place opened: dest= for an export, src= for an import, the other one refused.
    expect(specResource({ type: 'local', attrs: { dest: `${ROOT}/cache/a` } }, ROOT, 'export')).toBe('local/cache/a');
    expect(() => specResource({ type: 'local', attrs: { src: `${ROOT}/cache/b`, dest: `${ROOT}/cache/a` } }, ROOT, 'export')).toThrow(/takes dest=DIR, not src=/);
    expect(() => specResource({ type: 'local', attrs: { src: `${ROOT}/cache/b` } }, ROOT, 'export')).toThrow(/takes dest=DIR, not src=/);
    expect(() => specResource({ type: 'local', attrs: { dest: `${ROOT}/cache/b` } }, ROOT, 'import')).toThrow(/takes src=DIR, not dest=/);
    expect(() => refuseDaemonOnlyAttrs({ type: 'registry', attrs: { ref: 'x', 'registry.insecure': 'true' } })).toThrow(/registry.insecure/);
  });
});

describe('tiers', () => {
  const tiers: TierSettings = {
    default: { global: 'reg.io/cache/global/{name}', tenant: 'reg.io/cache/{tenant}/{name}' },
    tenants: { bigco: { global: 'reg.io/cache/global/{name}', tenant: 'big.reg.io/bigco/{name}' } },
  };
  const refs = (x: { specs: { attrs: Record<string, string> }[] }) => x.specs.map((s) => s.attrs['ref']);

  it('imports read the tenant tier, then the global one', () => {
    expect(refs(expandTier({ type: 'tier', attrs: { name: 'app' } }, tiers, 'acme', 'import'))).toEqual(['reg.io/cache/acme/app:latest', 'reg.io/cache/global/app:latest']);
    expect(refs(expandTier({ type: 'tier', attrs: { name: 'team/app', tag: 'main' } }, tiers, 'acme', 'import'))).toEqual([
      'reg.io/cache/acme/team/app:main',
      'reg.io/cache/global/team/app:main',
    ]);
    expect(refs(expandTier({ type: 'tier', attrs: { name: 'app', tier: 'global' } }, tiers, 'acme', 'import'))).toEqual(['reg.io/cache/global/app:latest']);
    expect(refs(expandTier({ type: 'tier', attrs: { name: 'app' } }, tiers, 'bigco', 'import'))).toEqual(['big.reg.io/bigco/app:latest', 'reg.io/cache/global/app:latest']);
  });

  it('exports write the tenant tier unless tier=global; other attributes pass through', () => {
    const e = expandTier({ type: 'tier', attrs: { name: 'app', 'image-manifest': 'false' } }, tiers, 'acme', 'export');
    expect(e.specs).toEqual([{ type: 'registry', attrs: { 'image-manifest': 'false', ref: 'reg.io/cache/acme/app:latest' } }]);
    expect(e.siblings.map((s) => s.attrs['ref'])).toEqual(['reg.io/cache/global/app:latest']);
    expect(refs(expandTier({ type: 'tier', attrs: { name: 'app', tier: 'global' } }, tiers, 'acme', 'export'))).toEqual(['reg.io/cache/global/app:latest']);
  });

  it('refuses bad names, unknown tiers, missing config or tenant, and a tenant that is the global tier', () => {
    for (const name of ['', '..', '../x', 'a/../b', 'App', 'a//b', '/a', 'a/', 'a b', 'a:b', 'a@b']) {
      expect(() => expandTier({ type: 'tier', attrs: { name } }, tiers, 'acme', 'import'), name).toThrow(/name=/);
    }
    expect(() => expandTier({ type: 'tier', attrs: { name: 'app', tier: 'both' } }, tiers, 'acme', 'import')).toThrow(/tier=/);
    expect(() => expandTier({ type: 'tier', attrs: { name: 'app', tag: '-x' } }, tiers, 'acme', 'import')).toThrow(/tag/);
    expect(() => expandTier({ type: 'tier', attrs: { name: 'app' } }, undefined, 'acme', 'import')).toThrow(/tiers in the daemon config/);
    expect(() => expandTier({ type: 'tier', attrs: { name: 'app' } }, tiers, undefined, 'import')).toThrow(/authenticated/);
    expect(() => expandTier({ type: 'tier', attrs: { name: 'app' } }, tiers, 'global', 'export')).toThrow(/same repository/);
  });

  it('checks templates and turns them into grant patterns', () => {
    expect(checkTemplate('reg.io:5000/cache/{tenant}/{name}', 't')).toBeTruthy();
    for (const bad of ['reg.io/cache/{name}/x', 'reg.io/{name}/{name}', 'cache/{tenant}/{name}', '{tenant}.reg.io/c/{name}', 'reg.io/c/{who}/{name}', 'reg.io/c/{name}:v1', 'reg.io/C/{name}']) {
      expect(() => checkTemplate(bad, 't'), bad).toThrow();
    }
    expect(templatePattern('reg.io/cache/{tenant}/{name}', 'acme').source).toBe('reg.io/cache/acme/**');
  });
});
