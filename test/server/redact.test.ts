// What a tenant reads of an error: its own spec's words, never the daemon's
// file system (root path, other absolute paths) nor raw errno text.
import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { Redactor } from '../../src/server/redact.js';

const ROOT = '/var/lib/bk cache/root';

function sysErr(code: string, syscall: string, p: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, ${syscall} '${p}'`), { code, syscall, path: p, errno: -20 });
}

describe('Redactor', () => {
  it('shows paths under the root as the spec names them, and hides every other daemon path', () => {
    const r = new Redactor(ROOT);
    expect(r.text(`${ROOT}/cache/b/x is not a directory`)).toBe('cache/b/x is not a directory');
    expect(r.text(`tag "v1" not found in local:${ROOT}/cache/b/app`)).toBe('tag "v1" not found in local:cache/b/app');
    expect(r.text(`cannot open ${ROOT}`)).toBe("cannot open the daemon's store");
    expect(r.text('cannot read /etc/bkcache/docker-config.json: bad')).toBe('cannot read <daemon path>: bad');
    expect(r.text(`lock "${ROOT}x/y"`)).toBe('lock "<daemon path>"');
    // URLs and digests are not paths.
    expect(r.text('GET https://reg.io/v2/cache/a/blobs/sha256:abc failed')).toBe('GET https://reg.io/v2/cache/a/blobs/sha256:abc failed');
  });

  it('keeps a path outside the root that the caller named itself', () => {
    const r = new Redactor(ROOT);
    r.named('/srv/caches/app');
    expect(r.text("no such file '/srv/caches/app/index.json'")).toBe("no such file '/srv/caches/app/index.json'");
    expect(r.text("no such file '/srv/caches/other'")).toBe("no such file '<daemon path>'");
  });

  it('turns raw errno errors into words with a typed code', () => {
    const r = new Redactor(ROOT);
    const e = r.error(sysErr('ENOTDIR', 'mkdir', `${ROOT}/cache/b/x/blobs`, 'not a directory'));
    expect([e.code, e.message, e.reason]).toEqual(['FAILED_PRECONDITION', 'not a directory: cache/b/x/blobs', 'file-system']);
    const full = r.error(sysErr('ENOSPC', 'write', `${ROOT}/cache/b/x/blobs/sha256/ab.ingest`, 'no space left on device'));
    expect(full.code).toBe('RESOURCE_EXHAUSTED');
    expect(full.message).not.toMatch(/ENOSPC|var\/lib/);
    // Wrapped in a typed error, the text is cleaned all the same.
    const wrapped = r.error(new BkError('INTERNAL', `export failed: EACCES: permission denied, open '/etc/shadow'`, { cause: sysErr('EACCES', 'open', '/etc/shadow', 'permission denied') }));
    expect([wrapped.code, wrapped.message]).toEqual(['FAILED_PRECONDITION', 'export failed: permission denied: <daemon path>']);
  });

  it('bounds its work and output whatever the input', () => {
    const r = new Redactor(ROOT);
    expect(r.text(`/${'.'.repeat(1 << 20)}`).length).toBeLessThan(9000);
    expect(r.text(`EACCES: ${'x'.repeat(1 << 20)}`).length).toBeLessThan(9000);
  });

  it('leaves messages without paths as they are, to the byte', () => {
    const r = new Redactor(ROOT);
    const e = new BkError('PERMISSION_DENIED', 'permission denied: the token does not grant push on the export target', { reason: 'permission-denied' });
    expect(r.error(e)).toBe(e);
  });
});
