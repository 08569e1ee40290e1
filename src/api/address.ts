// Listen addresses: "unix:///path.sock", "unix:path", "tcp://host:port" or a
// bare "host:port"; and the default socket path, which falls back from
// /run/bkcache to $XDG_RUNTIME_DIR/bkcache to /tmp/bkcache-$UID when the
// directory cannot be written (an unprivileged daemon cannot use /run).
import { constants, existsSync, promises as fs, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { failedPrecondition, invalidArgument } from '../errors.js';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const SYSTEM_SOCKET = '/run/bkcache/bkcache.sock';

export function parseAddress(s: string): ListenAddress {
  if (s.startsWith('unix:')) {
    let p = s.slice('unix:'.length);
    if (p.startsWith('//')) p = p.slice(2);
    if (!p) throw invalidArgument(`invalid address ${JSON.stringify(s)}: no socket path`, { reason: 'invalid-address' });
    return { kind: 'unix', path: path.resolve(p) };
  }
  const hp = s.startsWith('tcp://') ? s.slice('tcp://'.length) : s;
  const m = /^(\[[^\]]+\]|[^:/\s]*):(\d{1,5})$/.exec(hp);
  if (!m) throw invalidArgument(`invalid address ${JSON.stringify(s)}: want unix:///path or tcp://host:port`, { reason: 'invalid-address' });
  const port = Number(m[2]);
  if (port > 65535) throw invalidArgument(`invalid port in ${JSON.stringify(s)}`, { reason: 'invalid-address' });
  return { kind: 'tcp', host: m[1] || '0.0.0.0', port };
}

/** The target string grpc-js binds or dials. */
export function grpcTarget(a: ListenAddress): string {
  return a.kind === 'unix' ? `unix://${a.path}` : `${a.host}:${a.port}`;
}

export function formatAddress(a: ListenAddress): string {
  return a.kind === 'unix' ? `unix://${a.path}` : `tcp://${a.host}:${a.port}`;
}

function uid(): number | string {
  return typeof process.getuid === 'function' ? process.getuid() : os.userInfo().username;
}

/** Candidate default sockets, most preferred first. */
export function socketCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const out = [SYSTEM_SOCKET];
  if (env.XDG_RUNTIME_DIR) out.push(path.join(env.XDG_RUNTIME_DIR, 'bkcache', 'bkcache.sock'));
  out.push(path.join(os.tmpdir(), `bkcache-${uid()}`, 'bkcache.sock'));
  return out;
}

async function usableDir(dir: string, mode: number): Promise<boolean> {
  try {
    await fs.mkdir(dir, { recursive: true, mode });
    await fs.access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first default socket whose directory this process can create and write. */
export async function defaultListenSocket(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  for (const sock of socketCandidates(env)) {
    // Under /tmp other users could see the socket; keep the directory private there.
    const mode = sock.startsWith(os.tmpdir()) ? 0o700 : 0o755;
    if (await usableDir(path.dirname(sock), mode)) return sock;
  }
  throw invalidArgument('no writable directory for the default socket; pass --addr', { reason: 'invalid-address' });
}

/** Where a client looks by default: $BKCACHE_ADDR, else the first candidate socket that exists. */
export function defaultClientAddress(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BKCACHE_ADDR) return env.BKCACHE_ADDR;
  for (const sock of socketCandidates(env)) {
    try {
      if (statSync(sock).isSocket()) return `unix://${sock}`;
    } catch {
      // not there: try the next one
    }
  }
  return `unix://${SYSTEM_SOCKET}`;
}

/**
 * Gets a unix socket path ready to bind: creates its directory and removes a
 * stale socket left by a daemon that died, but refuses to take over a socket
 * that another daemon still answers on.
 */
export async function prepareUnixSocket(sock: string): Promise<void> {
  await fs.mkdir(path.dirname(sock), { recursive: true, mode: 0o755 });
  if (!existsSync(sock)) return;
  const st = await fs.lstat(sock);
  if (!st.isSocket()) throw invalidArgument(`${sock} exists and is not a socket`, { reason: 'invalid-address' });
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw failedPrecondition(`another process is listening on ${sock}`, { reason: 'address-in-use' });
  await fs.rm(sock, { force: true });
}

/** Who may connect to a unix socket: connecting needs write permission on it. */
export interface SocketAccess {
  /** e.g. 0o660; default: what the umask gives (owner only, usually). */
  mode?: number;
  /** A group name or numeric gid that gets the socket. */
  group?: string;
}

/** Parses --socket-mode: octal, as chmod takes it ("660", "0660", "0o660"). */
export function parseSocketMode(s: string): number {
  const m = /^(?:0o?)?([0-7]{3})$/.exec(s);
  if (!m) throw invalidArgument(`invalid socket mode ${JSON.stringify(s)}: want octal such as 0660`, { reason: 'invalid-address' });
  return parseInt(m[1]!, 8);
}

/** A group's gid from its name (or a numeric gid as it is), via /etc/group: Node has no getgrnam. */
export function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    // no group database: the name cannot be resolved
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid && /^\d+$/.test(gid)) return Number(gid);
  }
  throw invalidArgument(`unknown group ${JSON.stringify(group)}`, { reason: 'invalid-address' });
}

/** Applies the socket's group, then its mode, right after it is bound. */
export async function setSocketAccess(sock: string, access: SocketAccess = {}): Promise<void> {
  if (access.group !== undefined) await fs.chown(sock, -1, groupId(access.group));
  if (access.mode !== undefined) await fs.chmod(sock, access.mode);
}
