// The audit part of each call's log line: who called (tenant), what it
// touched (refs, with the action checked), how many bytes moved. The call's
// method, status code and duration are already on the same line (context.ts),
// so one call is one line. A token never reaches this record: the record is
// built from the verified identity, and anything token-shaped a caller stuffed
// into a spec is scrubbed before the line is written.
import type { Action, Identity } from './policy.js';

export interface AuditRecord {
  /** The JWT sub; null when auth is off. */
  tenant: string | null;
  /** The token's jti, when it has one. */
  token_id?: string;
  /** "pull registry.internal/cache/acme/app", one per resource the call was allowed or refused. */
  refs: string[];
  /** The place an export or copy opened to write (from the store itself, not the spec). */
  wrote?: string;
  /** Blob bytes the call moved: sent (FetchBlob), received from the client (Export), uploaded (Copy). */
  bytes: number;
  /** Why a token was refused, for the operator; the caller only ever sees one fixed message. */
  auth_error?: string;
  /** The ref the call was refused on, for the operator. */
  denied?: string;
}

export function newAudit(): AuditRecord {
  return { tenant: null, refs: [], bytes: 0 };
}

export function noteIdentity(a: AuditRecord, who: Identity): void {
  a.tenant = who.tenant;
  if (who.tokenId !== undefined) a.token_id = who.tokenId;
}

export function noteRef(a: AuditRecord, action: Action, name: string): void {
  const entry = `${action} ${name}`;
  if (!a.refs.includes(entry)) a.refs.push(entry);
}

// Three base64url runs joined by dots, the first one a JSON object ("eyJ"): what a JWT looks like.
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** Replaces anything token-shaped in a log value, recursively. */
export function scrub(v: unknown): unknown {
  if (typeof v === 'string') return v.replace(JWT_SHAPE, '[redacted]');
  if (Array.isArray(v)) return v.map(scrub);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x)]));
  return v;
}
