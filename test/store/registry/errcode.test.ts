// Mapping of registry responses to typed errors. The property everything
// else leans on: NOT_FOUND comes from misses only, never from outages,
// rate limits or auth failures. Codes: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
import { describe, expect, it } from 'vitest';
import { toStatus } from '../../../src/api/status.js';
import { codeFor, parseErrorBody, registryError, RegistryError } from '../../../src/store/registry/errcode/index.js';

const body = (...codes: string[]) => JSON.stringify({ errors: codes.map((code) => ({ code, message: `${code} happened`, detail: { secret: 'x' } })) });

describe('codeFor', () => {
  it.each([
    [404, ['MANIFEST_UNKNOWN'], 'NOT_FOUND'],
    [404, ['BLOB_UNKNOWN'], 'NOT_FOUND'],
    [404, ['NAME_UNKNOWN'], 'NOT_FOUND'],
    [404, [], 'NOT_FOUND'],
    [400, ['MANIFEST_UNKNOWN'], 'NOT_FOUND'],
    [401, ['UNAUTHORIZED'], 'UNAUTHENTICATED'],
    [401, ['MANIFEST_UNKNOWN'], 'UNAUTHENTICATED'],
    [403, ['DENIED'], 'PERMISSION_DENIED'],
    [429, ['TOOMANYREQUESTS'], 'RESOURCE_EXHAUSTED'],
    [503, ['MANIFEST_UNKNOWN'], 'UNAVAILABLE'],
    [500, [], 'UNAVAILABLE'],
    [400, ['DIGEST_INVALID'], 'DATA_LOSS'],
    [400, ['SIZE_INVALID'], 'DATA_LOSS'],
    [400, ['MANIFEST_INVALID'], 'INVALID_ARGUMENT'],
    [400, ['MANIFEST_BLOB_UNKNOWN'], 'FAILED_PRECONDITION'],
    [400, ['DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN'], 'FAILED_PRECONDITION'],
    [400, ['NAME_INVALID'], 'INVALID_ARGUMENT'],
    [400, ['TAG_INVALID'], 'INVALID_ARGUMENT'],
    [405, ['UNSUPPORTED'], 'FAILED_PRECONDITION'],
    [405, [], 'FAILED_PRECONDITION'],
    [416, [], 'FAILED_PRECONDITION'],
    [413, [], 'RESOURCE_EXHAUSTED'],
    [400, ['SOMETHING_NEW'], 'INVALID_ARGUMENT'],
  ])('%i %j → %s', (status, codes, want) => {
    expect(codeFor(status, codes)).toBe(want);
  });

  it('gives NOT_FOUND for no status but 404 unless the body says *_UNKNOWN', () => {
    for (let s = 400; s < 600; s++) {
      if (s === 404) continue;
      expect(codeFor(s, []), `status ${s}`).not.toBe('NOT_FOUND');
      expect(codeFor(s, ['UNAUTHORIZED', 'DENIED']), `status ${s}`).not.toBe('NOT_FOUND');
    }
  });

  it('never gives INTERNAL: a status nobody expected (a redirect on an upload) is the registry misbehaving', () => {
    for (let s = 100; s < 600; s++) expect(codeFor(s, []), `status ${s}`).not.toBe('INTERNAL');
    expect(codeFor(302, [])).toBe('UNAVAILABLE');
  });
});

describe('parseErrorBody and registryError', () => {
  it('reads distribution error bodies and tolerates others', () => {
    expect(parseErrorBody(body('BLOB_UNKNOWN')).map((e) => e.code)).toEqual(['BLOB_UNKNOWN']);
    expect(parseErrorBody('{"errors":[{"code":"denied"}]}')[0]!.code).toBe('DENIED');
    expect(parseErrorBody('<html>bad gateway</html>')).toEqual([]);
    expect(parseErrorBody('{"errors":"nope"}')).toEqual([]);
    expect(parseErrorBody('')).toEqual([]);
  });

  it('builds a typed error with status, codes, reason and no detail', () => {
    const e = registryError(404, body('MANIFEST_UNKNOWN'), 'GET manifest registry:h/r:t');
    expect(e).toBeInstanceOf(RegistryError);
    expect([e.code, e.status, e.codes, e.reason]).toEqual(['NOT_FOUND', 404, ['MANIFEST_UNKNOWN'], 'manifest-unknown']);
    expect(e.message).toContain('GET manifest registry:h/r:t: HTTP 404 (MANIFEST_UNKNOWN: MANIFEST_UNKNOWN happened)');
    expect(e.message).not.toContain('secret');
    expect(registryError(502, 'oops', 'x').reason).toBe('http-502');
  });

  it('keeps a hostile error body out of reasons and messages: odd codes dropped, control characters blanked, entries capped', () => {
    const hostile = JSON.stringify({
      errors: [
        { code: 'BAD\nCODE', message: 'x' },
        { code: 'É', message: 'x' },
        { code: 'X'.repeat(20_000), message: 'x' },
        { code: 'DENIED', message: 'no\x1b[31m red\nsecond line' },
        ...Array.from({ length: 1000 }, () => ({ code: 'UNKNOWN', message: 'm' })),
      ],
    });
    const e = registryError(400, hostile, 'PUT blob registry:h/r');
    expect(e.reason).toBe('denied');
    expect(e.codes.length).toBeLessThanOrEqual(16);
    expect(e.message).not.toMatch(/[\u0000-\u001f]/);
    expect(e.message).toContain('second line');
    // The daemon can send it: gRPC metadata takes the reason.
    expect(toStatus(e).metadata?.get('bkcache-reason')).toEqual(['denied']);
  });
});
