// The CLI's exit codes, in one table: scripts can tell a miss (3) from an
// outage (1) and from their own mistake (2). README "Exit codes" and
// `bkcache --help` print this table.
import { asBkError, type ErrorCode } from '../errors.js';
import { UsageError } from './usage-error.js';

export const EXIT = {
  /** Done. */
  OK: 0,
  /** The operation failed: a registry or daemon outage, a digest mismatch, an internal error. */
  FAILED: 1,
  /** Bad usage or bad input: unknown flag, bad spec or attribute, malformed cache. */
  USAGE: 2,
  /** What was asked for does not exist: a cache, tag, manifest or blob. */
  NOT_FOUND: 3,
  /** Refused: credentials missing or rejected, or not allowed. */
  DENIED: 4,
  /** `verify` found the cache broken: blobs it names are missing or corrupt (and no repair was asked for). */
  BROKEN: 5,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  the operation failed (outage, digest mismatch, daemon error)
  2  bad usage or bad input (flags, specs, attributes, malformed caches)
  3  not found (cache, tag, manifest or blob)
  4  authentication or permission refused
  5  verify found the cache broken (missing or corrupt blobs)
`;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  NOT_FOUND: EXIT.NOT_FOUND,
  UNAUTHENTICATED: EXIT.DENIED,
  PERMISSION_DENIED: EXIT.DENIED,
};

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  return BY_CODE[asBkError(err).code] ?? EXIT.FAILED;
}
