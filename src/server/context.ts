// What every handler shares: settings, logger, metrics, call slots; plus the
// two things every handler does: resolve specs against the embedded default
// store, and account for each call (one log line, metrics) when it ends.
import path from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import { localPlace } from '../cache/remote/local/index.js';
import type { CacheSpec } from '../cache/spec.js';
import { asBkError, BkError } from '../errors.js';
import type { AuthRuntime } from './access.js';
import { newAudit, scrub, type AuditRecord } from './auth/audit.js';
import type { DaemonConfig } from './config.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Semaphore } from './semaphore.js';
import { grpcCodeFor, statusName, toStatus } from '../api/status.js';
import { Redactor } from './redact.js';

export interface ServerContext {
  cfg: DaemonConfig;
  log: Logger;
  metrics: Metrics;
  exportSlots: Semaphore;
  importSlots: Semaphore;
  fetchSlots: Semaphore;
  /** Token verification and tiers, loaded once from cfg.auth and cfg.tiers. */
  auth: AuthRuntime;
}

/**
 * Points specs without a place at the daemon's root: an empty spec and
 * `type=local` without src=/dest= mean the embedded store; relative local
 * paths are taken relative to the root, since the daemon's working
 * directory means nothing to a client.
 */
export function resolveSpec(cfg: DaemonConfig, spec: CacheSpec, mode: 'import' | 'export'): CacheSpec {
  const type = spec.type || 'local';
  if (type !== 'local') return spec;
  const attrs = { ...spec.attrs };
  const key = mode === 'import' ? 'src' : 'dest';
  const given = attrs[key];
  attrs[key] = given ? path.resolve(cfg.root, given) : cfg.root;
  // dest= on a source or src= on a target is a usage error: refused here, before anything is named or opened.
  localPlace(attrs, mode);
  return { type, attrs };
}

/** Why grpc-js cancelled a call: its deadline passed, or the client (or a forced shutdown) ended it. */
export function cancellation(call: { getDeadline(): Date | number }, what: string): BkError {
  const dl = call.getDeadline();
  const at = dl instanceof Date ? dl.getTime() : dl;
  if (Number.isFinite(at) && at <= Date.now()) return new BkError('DEADLINE_EXCEEDED', `${what}: deadline exceeded`);
  return new BkError('CANCELLED', `${what} cancelled by the client or by shutdown`);
}

export interface CallTracker {
  /** Extra fields for the call's log line (specs, digests, counts: nothing secret). */
  fields: Record<string, unknown>;
  /** Who called, what it touched and the bytes moved: the audit part of the same line. */
  audit: AuditRecord;
  /** What the caller may read of messages and places (redact.ts); the log line keeps the detail. */
  redact: Redactor;
  /** The status to send for `err`: redacted, from the same error the log line records. */
  status(err: unknown): ReturnType<typeof toStatus>;
  /** Ends the call's accounting; returns the status name. Safe to call twice. */
  end(err?: unknown): string;
}

export function trackCall(ctx: ServerContext, method: string, peer: string): CallTracker {
  const started = process.hrtime.bigint();
  const stopInflight = ctx.metrics.callStarted(method);
  const fields: Record<string, unknown> = {};
  const audit = newAudit();
  let ended: string | undefined;
  const redact = new Redactor(ctx.cfg.root);
  return {
    fields,
    audit,
    redact,
    status: (err) => toStatus(redact.error(err)),
    end(err?: unknown) {
      if (ended) return ended;
      const code = err === undefined ? Status.OK : grpcCodeFor(asBkError(err).code);
      ended = statusName(code);
      stopInflight();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      ctx.metrics.observeCall(method, ended, seconds);
      // One line per call is also the audit record: tenant, method, refs, code and bytes side by side.
      const line = { method, code: ended, duration_ms: Math.round(seconds * 1000), peer, ...audit, ...fields } as Record<string, unknown>;
      if (err !== undefined) {
        const e = asBkError(err);
        line.error = e.message.split('\n')[0];
        if (e.reason) line.reason = e.reason;
      }
      const safe = scrub(line) as Record<string, unknown>;
      if (err !== undefined && code !== Status.NOT_FOUND && code !== Status.CANCELLED) ctx.log.error('call', safe);
      else ctx.log.info('call', safe);
      return ended;
    },
  };
}

