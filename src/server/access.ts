// Where the handlers meet the auth layer: authenticate a call's bearer token,
// then authorize each spec it names, before any store is opened. A denial is
// therefore a function of the token and the request alone: the answer for
// "exists but not yours" cannot differ from "does not exist", and the messages
// below echo only positions in the request ("sources[1]"), never a ref.
import path from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import type { CacheSpec } from '../cache/spec.js';
import { BkError, invalidArgument } from '../errors.js';
import type { ContentStore } from '../store/types.js';
import { noteIdentity, noteRef, type AuditRecord } from './auth/audit.js';
import { loadVerifyKeys } from './auth/keys.js';
import { checkMetadataSize } from './header-guard.js';
import { allows, type Action, type Identity } from './auth/policy.js';
import { localName, refuseDaemonOnlyAttrs, specResource } from './auth/scope.js';
import { expandTier, isTierSpec, type TierSettings } from './auth/tiers.js';
import { bearerToken, TokenError, verifyToken, type VerifyKeys, type VerifyOptions } from './auth/token.js';
import type { DaemonConfig } from './config.js';
import { resolveSpec, type ServerContext } from './context.js';
import { Redactor } from './redact.js';
import type { WireSpec } from '../api/proto.js';
import { specFromWire } from '../api/wire.js';

export interface AuthRuntime {
  /** Undefined: auth is off (the daemon then serves unix sockets only, unless told otherwise). */
  keys?: VerifyKeys;
  verify: VerifyOptions;
  tiers?: TierSettings;
}

export function loadAuth(cfg: DaemonConfig): AuthRuntime {
  const a = cfg.auth;
  return {
    keys: loadVerifyKeys(a),
    verify: { audience: a.audience, issuer: a.issuer, skewSeconds: a.clockSkewSeconds },
    tiers: cfg.tiers,
  };
}

/** One message for every bad token (missing, malformed, forged, expired, wrong audience): no hint of which. */
export const UNAUTHENTICATED_MESSAGE = 'unauthenticated: this call needs a valid bearer token';

export function unauthenticated(): BkError {
  return new BkError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE, { reason: 'unauthenticated' });
}

function denied(action: Action, where: string): BkError {
  return new BkError('PERMISSION_DENIED', `permission denied: the token does not grant ${action} on ${where}`, { reason: 'permission-denied' });
}

/** The resource name of a store the core opened ("registry:host/repo", "local:/dir"). */
function storeName(store: ContentStore, root: string): string | undefined {
  if (store.registry && store.repository) return `${store.registry}/${store.repository}`;
  if (store.location.startsWith('local:')) return localName(store.location.slice('local:'.length), root);
  return undefined;
}

/** A call's verified caller. With auth off, `identity` is undefined and everything is allowed (refs are still audited). */
export class Caller {
  constructor(
    private readonly ctx: ServerContext,
    readonly identity: Identity | undefined,
    private readonly audit: AuditRecord,
    /** Learns the local places this call names, to show them back as the caller wrote them. */
    private readonly redact: Redactor = new Redactor(ctx.cfg.root),
  ) {}

  private check(spec: CacheSpec, action: Action, where: string): void {
    const mode = action === 'push' ? 'export' : 'import';
    // A local place the caller named is shown back to it as it wrote it (redact.ts).
    const place = spec.type === 'local' ? spec.attrs[mode === 'import' ? 'src' : 'dest'] : undefined;
    if (place) this.redact.named(place);
    if (!this.identity) {
      // Auth off: nothing to decide; name what we can for the log, and let the core report bad specs as before.
      try {
        noteRef(this.audit, action, specResource(spec, this.ctx.cfg.root, mode));
      } catch {
        // the core rejects it with its own message
      }
      return;
    }
    refuseDaemonOnlyAttrs(spec);
    const name = specResource(spec, this.ctx.cfg.root, mode);
    noteRef(this.audit, action, name);
    if (!allows(this.identity, action, name)) {
      this.audit.denied = `${action} ${name}`;
      throw denied(action, where);
    }
  }

  /** A source to read: a tier spec becomes its fallback chain; every spec of it must be pullable. */
  readChain(w: WireSpec | null | undefined, where: string): CacheSpec[] {
    const spec = specFromWire(w);
    if (isTierSpec(spec)) {
      const { specs } = expandTier(spec, this.ctx.auth.tiers, this.identity?.tenant, 'import');
      for (const s of specs) this.check(s, 'pull', where);
      return specs;
    }
    const resolved = resolveSpec(this.ctx.cfg, spec, 'import');
    this.check(resolved, 'pull', where);
    return [resolved];
  }

  /**
   * A target to write, which must be pushable. `mountFrom` lists other tiers
   * of the same cache that this caller may pull: an export may mount blobs
   * from them instead of asking the client. Tiers it may not pull are left
   * out here, so they are never even asked whether they hold a blob.
   */
  writeTarget(w: WireSpec | null | undefined, where: string): { spec: CacheSpec; mountFrom: CacheSpec[] } {
    const spec = specFromWire(w);
    if (isTierSpec(spec)) {
      const { specs, siblings } = expandTier(spec, this.ctx.auth.tiers, this.identity?.tenant, 'export');
      this.check(specs[0]!, 'push', where);
      return { spec: specs[0]!, mountFrom: siblings.filter((s) => this.mayPullSpec(s)) };
    }
    const resolved = resolveSpec(this.ctx.cfg, spec, 'export');
    this.check(resolved, 'push', where);
    return { spec: resolved, mountFrom: [] };
  }

  /**
   * Export's content_store_dir: read like a local source, so it needs pull on
   * its name. Resolved against the root like local specs, and the resolved
   * path is what the export then reads, so the check and the read agree.
   */
  contentDir(dir: string): string {
    // PATH_MAX: no directory is named by more, and the name is matched and echoed below.
    if (dir.length > 4096) throw invalidArgument('content_store_dir is longer than 4096 characters', { reason: 'invalid-spec' });
    const abs = path.resolve(this.ctx.cfg.root, dir);
    const name = localName(abs, this.ctx.cfg.root);
    this.redact.named(abs);
    noteRef(this.audit, 'pull', name);
    if (this.identity && !allows(this.identity, 'pull', name)) {
      this.audit.denied = `pull ${name}`;
      throw denied('pull', 'content_store_dir');
    }
    return abs;
  }

  private mayPullSpec(spec: CacheSpec): boolean {
    if (!this.identity) return true;
    try {
      refuseDaemonOnlyAttrs(spec);
      const name = specResource(spec, this.ctx.cfg.root, 'import');
      if (!allows(this.identity, 'pull', name)) return false;
      noteRef(this.audit, 'pull', name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Called with the store an export or copy opened to write, before anything
   * is written: the audit records the place actually written (`wrote`), and
   * a store that is not the place the target spec was authorized as is
   * refused. specResource and the backend read the same attribute, so this
   * never fires unless they drift apart; it is the guard that they cannot
   * drift silently.
   */
  confirmWrite(store: ContentStore, authorized: CacheSpec): void {
    const wrote = storeName(store, this.ctx.cfg.root);
    if (wrote !== undefined) this.audit.wrote = wrote;
    const expected = specResource(authorized, this.ctx.cfg.root, 'export');
    if (wrote !== expected) {
      this.audit.denied = `push ${wrote ?? store.location} (authorized: ${expected})`;
      throw new BkError('PERMISSION_DENIED', 'permission denied: the export target opened is not the place that was authorized', { reason: 'permission-denied' });
    }
  }

  /** Whether blobs may be mounted from (or read through) a store the core opened: only from pullable ones. */
  mayPullStore(store: ContentStore): boolean {
    if (!this.identity) return true;
    const name = storeName(store, this.ctx.cfg.root);
    return name !== undefined && allows(this.identity, 'pull', name);
  }
}

/**
 * The caller of a call, from its `authorization` metadata. Throws the one
 * UNAUTHENTICATED error; why a token failed goes to the audit record only.
 */
export function authenticate(ctx: ServerContext, metadata: Metadata, audit: AuditRecord, redact?: Redactor): Caller {
  // Before anything reads the metadata: an oversized header list is refused, typed, at once.
  checkMetadataSize(metadata, ctx.cfg.limits.maxMetadataBytes);
  const keys = ctx.auth.keys;
  if (!keys) return new Caller(ctx, undefined, audit, redact);
  let identity: Identity;
  try {
    identity = verifyToken(bearerToken(metadata.get('authorization')), keys, ctx.auth.verify);
  } catch (err) {
    audit.auth_error = err instanceof TokenError ? err.why : 'unexpected error';
    throw unauthenticated();
  }
  noteIdentity(audit, identity);
  return new Caller(ctx, identity, audit, redact);
}
