// Starts the built `bkcache serve` as a real process on a temp unix socket
// with a temp root, waits until it logs "listening", and collects its JSON
// log lines so tests can check what it did and that it is still alive.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { grpcTarget, parseAddress } from '../../src/api/address.js';
import { cacheProto, type WireExportRequest, type WireExportResponse } from '../../src/api/proto.js';
import { BIN } from './cli.js';

export interface DaemonProcess {
  addr: string;
  root: string;
  dir: string;
  proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  alive(): boolean;
  /** Sends `signal` and resolves with how the process ended. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Removes the temp directory (after stop). */
  cleanup(): void;
}

/** `bkcache serve` from the build; npm test builds first. */
function serveArgv(): string[] {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run "npm run build" first (npm test does)`);
  return [BIN, 'serve'];
}

/** `root`: a store root to reuse (a restart on the same root); default a fresh one. */
export async function startDaemon(opts: { args?: string[]; env?: Record<string, string>; timeoutMs?: number; root?: string } = {}): Promise<DaemonProcess> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-daemon-'));
  const sock = path.join(dir, 'bkcache.sock');
  const root = opts.root ?? path.join(dir, 'root');
  const argv = [...serveArgv(), '--addr', `unix://${sock}`, '--root', root, ...(opts.args ?? [])];
  const proc = spawn(process.execPath, argv, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitWaiters: ((e: NonNullable<typeof exited>) => void)[] = [];
  proc.on('exit', (code, signal) => {
    exited = { code, signal };
    for (const w of exitWaiters) w(exited);
  });
  const ready = new Promise<void>((resolve, reject) => {
    let buf = '';
    proc.stderr!.on('data', (c: Buffer) => {
      // BKCACHE_DAEMON_LOGS=1 shows the daemon's own output while debugging a test.
      if (process.env.BKCACHE_DAEMON_LOGS) process.stderr.write(c);
      stderr += c.toString();
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const obj = JSON.parse(line) as Record<string, unknown>;
          logs.push(obj);
          if (obj.msg === 'listening') resolve();
        } catch {
          // not a log line (a crash trace): kept in `stderr` for the error below
        }
      }
    });
    proc.once('exit', (code) => reject(new Error(`bkcache serve exited ${code} before listening:\n${stderr}`)));
    setTimeout(() => reject(new Error(`bkcache serve did not start within ${opts.timeoutMs ?? 15_000} ms:\n${stderr}`)), opts.timeoutMs ?? 15_000).unref();
  });
  proc.stdout!.resume();
  try {
    await ready;
  } catch (err) {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    addr: `unix://${sock}`,
    root,
    dir,
    proc,
    logs,
    alive: () => exited === undefined,
    stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (exited) return Promise.resolve(exited);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.kill('SIGKILL');
          reject(new Error(`bkcache serve did not exit within ${timeoutMs} ms of ${signal}:\n${stderr}`));
        }, timeoutMs);
        exitWaiters.push((e) => {
          clearTimeout(timer);
          resolve(e);
        });
        proc.kill(signal);
      });
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ------------------------------------------------------------ raw calls
// Hand-written Export conversations, for what the client library never
// sends: protocol violations, corrupt data, oversize messages.

export interface RawResult {
  code: number;
  details: string;
  responses: WireExportResponse[];
}

/**
 * Sends `first` messages, then `afterNeed(need)` once need_blobs arrives (if
 * given), half-closes, and resolves with the final status.
 */
export function rawExport(
  addr: string,
  first: WireExportRequest[],
  afterNeed?: (need: string[]) => WireExportRequest[],
  opts: { maxSendBytes?: number } = {},
): Promise<RawResult> {
  const Ctor = cacheProto().ctor;
  const client = new Ctor(grpcTarget(parseAddress(addr)), grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': opts.maxSendBytes ?? -1,
  }) as unknown as grpc.Client & { Export(): grpc.ClientDuplexStream<WireExportRequest, WireExportResponse> };
  const call = client.Export();
  const responses: WireExportResponse[] = [];
  return new Promise((resolve) => {
    const finish = (code: number, details: string) => {
      client.close();
      resolve({ code, details, responses });
    };
    call.on('data', (m: WireExportResponse) => {
      responses.push(m);
      if (m.msg === 'need_blobs' && afterNeed) {
        for (const x of afterNeed(m.need_blobs?.digests ?? [])) call.write(x);
        call.end();
      }
    });
    call.on('error', (e: grpc.ServiceError) => finish(e.code, e.details));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) finish(0, s.details);
    });
    for (const m of first) call.write(m);
    if (!afterNeed) call.end();
  });
}
