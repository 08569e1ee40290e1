// The BkError code <-> gRPC status mapping, both ways, in src/api/status.ts.
import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { BkError, type ErrorCode } from '../../src/errors.js';
import { errorCodeFor, fromServiceError, grpcCodeFor, REASON_KEY, statusName, toStatus } from '../../src/api/status.js';

const CODES: ErrorCode[] = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'UNAVAILABLE',
  'DATA_LOSS',
  'FAILED_PRECONDITION',
  'RESOURCE_EXHAUSTED',
  'CANCELLED',
  'DEADLINE_EXCEEDED',
  'INTERNAL',
];

describe('status mapping', () => {
  it.each(CODES)('%s maps to the gRPC status of the same name and back', (code) => {
    const g = grpcCodeFor(code);
    expect(statusName(g)).toBe(code);
    expect(errorCodeFor(g)).toBe(code);
  });

  it('maps statuses without a BkError code to the nearest one', () => {
    expect(errorCodeFor(status.UNKNOWN)).toBe('INTERNAL');
    expect(errorCodeFor(status.UNIMPLEMENTED)).toBe('FAILED_PRECONDITION');
    expect(errorCodeFor(status.OUT_OF_RANGE)).toBe('INVALID_ARGUMENT');
  });

  it('sends the first line of the message and the reason as trailing metadata', () => {
    const st = toStatus(new BkError('DATA_LOSS', 'digest mismatch\nmore detail', { reason: 'digest-mismatch' }));
    expect(st.code).toBe(status.DATA_LOSS);
    expect(st.details).toBe('digest mismatch');
    expect(st.metadata?.get(REASON_KEY)).toEqual(['digest-mismatch']);
  });

  it('treats untyped errors as INTERNAL and ENOENT as NOT_FOUND', () => {
    expect(toStatus(new Error('boom')).code).toBe(status.INTERNAL);
    const enoent = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    expect(toStatus(enoent).code).toBe(status.NOT_FOUND);
  });

  it('rebuilds a BkError from a received status', () => {
    const md = new Metadata();
    md.set(REASON_KEY, 'looping-record');
    const e = fromServiceError(Object.assign(new Error('3 INVALID_ARGUMENT: loop'), { code: status.INVALID_ARGUMENT, details: 'loop', metadata: md }));
    expect(e).toBeInstanceOf(BkError);
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toBe('loop');
    expect(e.reason).toBe('looping-record');
  });
});
