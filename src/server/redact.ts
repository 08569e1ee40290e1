// What a tenant may read in an answer. The daemon's own file system is not
// theirs: errors and results that name a path under the daemon's --root
// name it the way a spec would (root-relative, "cache/b/app"), a path the
// caller named itself stays as it wrote it, and any other absolute path
// becomes "<daemon path>". Raw errno text ("ENOTDIR: not a directory,
// mkdir '…'") is turned into words with a typed code. This is the one place
// every outgoing message passes through (tenantStatus, and the result
// fields that name places); the operator's log keeps the full detail.
import path from 'node:path';
import { asBkError, BkError, type ErrorCode } from '../errors.js';

/** Node's system error text: "ENOTDIR: not a directory, mkdir '/x'" (and "-> '/y'" for two-path calls). */
const ERRNO_TEXT = /\b(E[A-Z0-9]{2,}): ([^,\n]+?), [a-z_]+(?: '([^'\n]*)')?(?: -> '([^'\n]*)')?(?=$|[\s,;)])/g;

/** An absolute path where it starts a token: after nothing, a space, a quote, '=', ':' or '('; never a URL's "//" or a path's inner '/'. */
const ABS_PATH = /(?<![\w.~\-/])\/(?!\/)[^\s'",;)\]}>]*/g;

const MAX_TEXT = 8192;

/** Errno codes that are facts about the place, not daemon faults. */
const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOSPC: 'RESOURCE_EXHAUSTED',
  EDQUOT: 'RESOURCE_EXHAUSTED',
  EMFILE: 'UNAVAILABLE',
  ENFILE: 'UNAVAILABLE',
  ENOTDIR: 'FAILED_PRECONDITION',
  EISDIR: 'FAILED_PRECONDITION',
  EEXIST: 'FAILED_PRECONDITION',
  ENOTEMPTY: 'FAILED_PRECONDITION',
  ENAMETOOLONG: 'FAILED_PRECONDITION',
  ELOOP: 'FAILED_PRECONDITION',
  EROFS: 'FAILED_PRECONDITION',
  EACCES: 'FAILED_PRECONDITION',
  EPERM: 'FAILED_PRECONDITION',
  EXDEV: 'FAILED_PRECONDITION',
  EINVAL: 'FAILED_PRECONDITION',
};

/** The system error inside an error, following `cause`, if any. */
function systemError(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as NodeJS.ErrnoException;
    if (typeof x.code === 'string' && /^E[A-Z0-9]{2,}$/.test(x.code) && typeof x.syscall === 'string') return x;
  }
  return undefined;
}

export class Redactor {
  private readonly root: string;
  /** Absolute places outside the root that the caller named itself (admin grants): shown as they are. */
  private readonly own = new Set<string>();

  /** The root where it starts a path. */
  private readonly rootText?: RegExp;

  constructor(root: string) {
    this.root = path.resolve(root);
    const esc = this.root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // ROOT/… (the root-relative rest stays), ROOT alone, or ROOTsibling/… (another daemon path).
    if (this.root !== '/') this.rootText = new RegExp(`(?<![\\w.~\\-/])${esc}(/|[^\\s'",;)\\]}>]+)?`, 'g');
  }

  /** Records a local place the call's specs named (already resolved to an absolute path). */
  named(abs: string): void {
    const p = path.resolve(abs);
    if (!this.inside(p)) this.own.add(p);
  }

  private inside(p: string): boolean {
    return p === this.root || p.startsWith(this.root === '/' ? '/' : `${this.root}/`);
  }

  private shown(p: string): string {
    if (this.inside(p)) return this.relative(p);
    for (const o of this.own) if (p === o || p.startsWith(`${o}/`)) return p;
    return '<daemon path>';
  }

  private relative(p: string): string {
    const rel = path.relative(this.root, p);
    return rel === '' ? "the daemon's store" : rel;
  }

  /** A message or result string, as the caller may see it. */
  text(s: string): string {
    if (!s) return s;
    // Bounded work whatever the input: nothing sent is longer (status details are cut at 1 KiB).
    if (s.length > MAX_TEXT) s = `${s.slice(0, MAX_TEXT)}…`;
    // Errno text first, while its quoted paths are still whole.
    let out = s.replace(ERRNO_TEXT, (_m, _code: string, what: string, p1?: string, p2?: string) => {
      const where = [p1, p2].filter((p): p is string => !!p).map((p) => this.shown(path.resolve(p)));
      return where.length ? `${what}: ${where.join(' -> ')}` : what;
    });
    // Paths under the root, literally (a root with spaces or commas in it is still found whole).
    if (this.rootText) out = out.replace(this.rootText, (_m, rest?: string) => (rest === undefined ? "the daemon's store" : rest === '/' ? '' : '<daemon path>'));
    // A path that ends a clause ("…/config.json: bad", "…/x.") keeps its punctuation outside.
    return out.replace(ABS_PATH, (m) => {
      let end = m.length;
      while (end > 1 && (m[end - 1] === ':' || m[end - 1] === '.')) end--;
      return this.shown(m.slice(0, end)) + m.slice(end);
    });
  }

  /**
   * The error a caller is sent: the message redacted, and a raw system
   * error given the code its errno means (a directory that is a file is the
   * caller's FAILED_PRECONDITION, a full disk RESOURCE_EXHAUSTED), never INTERNAL.
   */
  error(err: unknown): BkError {
    const e = asBkError(err);
    const sys = systemError(e);
    const code = e.code === 'INTERNAL' && sys?.code ? (ERRNO_CODES[sys.code] ?? e.code) : e.code;
    const message = this.text(e.message.split('\n')[0]!);
    if (code === e.code && message === e.message) return e;
    return new BkError(code, message, { cause: e, reason: e.reason ?? (sys ? 'file-system' : undefined) });
  }
}
