// The one place where BkError codes and gRPC statuses meet, both ways: the
// daemon turns whatever a handler throws into a status, and the client turns
// a status back into a BkError, so callers on either side see the same codes.
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { asBkError, BkError, type ErrorCode } from '../errors.js';

/** Trailing metadata key carrying BkError.reason. */
export const REASON_KEY = 'bkcache-reason';

const TO_GRPC: Record<ErrorCode, Status> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  NOT_FOUND: Status.NOT_FOUND,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAVAILABLE: Status.UNAVAILABLE,
  DATA_LOSS: Status.DATA_LOSS,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  CANCELLED: Status.CANCELLED,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  INTERNAL: Status.INTERNAL,
};

/** gRPC statuses that have no BkError code of their own map to the nearest one. */
const FROM_GRPC: Partial<Record<Status, ErrorCode>> = {
  ...Object.fromEntries(Object.entries(TO_GRPC).map(([k, v]) => [v, k as ErrorCode])),
  [Status.UNKNOWN]: 'INTERNAL',
  [Status.ALREADY_EXISTS]: 'FAILED_PRECONDITION',
  [Status.ABORTED]: 'UNAVAILABLE',
  [Status.OUT_OF_RANGE]: 'INVALID_ARGUMENT',
  [Status.UNIMPLEMENTED]: 'FAILED_PRECONDITION',
};

export function grpcCodeFor(code: ErrorCode): Status {
  return TO_GRPC[code] ?? Status.INTERNAL;
}

export function errorCodeFor(code: Status): ErrorCode {
  return FROM_GRPC[code] ?? 'INTERNAL';
}

/** gRPC status names ("NOT_FOUND"), for logs and metrics labels. */
export function statusName(code: Status): string {
  return Status[code] ?? String(code);
}

/**
 * Anything thrown by a handler → the status sent to the client. Messages are
 * cut to their first line: details travel in an HTTP/2 trailer, and the
 * core's messages never carry secrets (credentials stay in BackendContext).
 */
export function toStatus(err: unknown): Partial<StatusObject> & { code: Status; details: string } {
  const e = asBkError(err);
  const metadata = new Metadata();
  if (e.reason) metadata.set(REASON_KEY, e.reason);
  // Details travel in a trailer, which the peer's header limits bound: one line, and not an echo of a huge input.
  const line = e.message.split('\n')[0]!;
  return { code: grpcCodeFor(e.code), details: line.length > MAX_DETAILS ? `${line.slice(0, MAX_DETAILS)}…` : line, metadata };
}

/** Longest status message sent; longer ones are cut (the daemon's log keeps the whole). */
export const MAX_DETAILS = 1024;

/** A status received by the client → a BkError with the same code, reason and message. */
export function fromServiceError(err: unknown): BkError {
  if (err instanceof BkError) return err;
  const se = err as Partial<ServiceError>;
  if (typeof se?.code !== 'number') return asBkError(err);
  const reason = se.metadata?.get(REASON_KEY)[0];
  return new BkError(errorCodeFor(se.code), se.details || se.message || statusName(se.code), {
    cause: err,
    reason: typeof reason === 'string' ? reason : undefined,
  });
}
