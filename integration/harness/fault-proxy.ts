// A fault-injecting reverse proxy for the registry tests: node http on
// 127.0.0.1, forwarding to a real registry unless a rule says otherwise.
// It keeps the client's Host header, so the registry writes upload
// Locations that point back at the proxy and every request comes through it.
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  path: string;
  status?: number;
  fault?: string;
  /** The Range header, when the request had one. */
  range?: string;
}

export type FaultAction =
  /** Answer without asking the registry (the request body is drained first). */
  | { respond: number; headers?: Record<string, string>; body?: string }
  /** Read this many request-body bytes, then drop the connection; nothing is forwarded. */
  | { resetAfterBytes: number }
  /** Forward, pass on the response headers and this many body bytes, then drop the connection. */
  | { cutResponseAfterBytes: number }
  /** Never answer (until the client gives up and closes the connection). */
  | { hang: true }
  /** Forward, then send the response body `bytes` at a time, one piece every `everyMs`. */
  | { trickle: { bytes: number; everyMs: number } }
  /**
   * Forward, then hand the buffered response to `mutate` before sending it on.
   * framing "fixed" (default): Content-Length is set to the new body's length;
   * "chunked": sent without Content-Length; "as-rewritten": the headers as
   * `mutate` left them (a lying Content-Length), and the connection is then
   * held open, like a server still owing bytes.
   */
  | { rewrite: Rewrite; framing?: 'fixed' | 'chunked' | 'as-rewritten' };

/** May return a promise (a test acting on the registry before the client sees the answer): the answer waits for it. */
type Rewrite = (r: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }) => void | Promise<void>;

export interface FaultRule {
  name: string;
  match: (req: { method: string; path: string }) => boolean;
  /** How many times the rule fires (default: always). */
  times?: number;
  action: FaultAction;
}

export interface FaultProxy {
  host: string;
  url: string;
  rules: FaultRule[];
  log: SeenRequest[];
  /** Highest number of requests matching `trackConcurrency` in flight at once. */
  maxConcurrent: number;
  trackConcurrency?: (req: { method: string; path: string }) => boolean;
  reset(): void;
  stop(): Promise<void>;
}

/** Sends `r` a few bytes at a time until done or the client goes away. */
function trickle(res: ServerResponse, r: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }, t: { bytes: number; everyMs: number }): void {
  res.writeHead(r.status, r.headers);
  let at = 0;
  const timer = setInterval(() => {
    if (res.destroyed || at >= r.body.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(r.body.subarray(at, at + t.bytes));
    at += t.bytes;
  }, t.everyMs);
  res.once('close', () => clearInterval(timer));
}

function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    req.on('data', () => {});
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.on('close', () => resolve());
  });
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const fired = new Map<FaultRule, number>();
  let inFlight = 0;

  const proxy: FaultProxy = {
    host: '',
    url: '',
    rules: [],
    log: [],
    maxConcurrent: 0,
    reset() {
      this.rules.length = 0;
      this.log.length = 0;
      this.maxConcurrent = 0;
      this.trackConcurrency = undefined;
      fired.clear();
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const pickRule = (method: string, path: string): FaultRule | undefined => {
    for (const r of proxy.rules) {
      const n = fired.get(r) ?? 0;
      if (r.times !== undefined && n >= r.times) continue;
      if (!r.match({ method, path })) continue;
      fired.set(r, n + 1);
      return r;
    }
    return undefined;
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    seen: SeenRequest,
    mutate?: Extract<FaultAction, { rewrite: unknown } | { trickle: unknown }>,
    cutAfter?: number,
  ) => {
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        seen.status = upRes.statusCode;
        if (cutAfter !== undefined) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          if (cutAfter <= 0) {
            res.flushHeaders();
            upRes.destroy();
            setTimeout(() => req.socket.destroy(), 20);
            return;
          }
          let sent = 0;
          upRes.on('data', (b: Buffer) => {
            if (sent >= cutAfter) return;
            const part = b.subarray(0, cutAfter - sent);
            sent += part.length;
            res.write(part, () => sent >= cutAfter && req.socket.destroy());
          });
          return;
        }
        if (!mutate) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const parts: Buffer[] = [];
        upRes.on('data', (b: Buffer) => parts.push(b));
        upRes.on('end', async () => {
          const r = { status: upRes.statusCode ?? 502, headers: { ...upRes.headers }, body: Buffer.concat(parts) };
          if ('trickle' in mutate) return trickle(res, r, mutate.trickle);
          await mutate.rewrite(r);
          const framing = mutate.framing ?? 'fixed';
          // HEAD answers keep the upstream Content-Length (they describe a body not sent).
          if (req.method !== 'HEAD' && framing === 'fixed') r.headers['content-length'] = String(r.body.length);
          if (framing === 'chunked') delete r.headers['content-length'];
          res.writeHead(r.status, r.headers);
          if (req.method === 'HEAD') return res.end();
          if (framing === 'as-rewritten') {
            const claimed = Number(r.headers['content-length'] ?? r.body.length);
            return void res.write(r.body.subarray(0, Math.min(claimed, r.body.length)));
          }
          res.end(r.body);
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const seen: SeenRequest = { method, path, range: req.headers.range };
    proxy.log.push(seen);
    const tracked = proxy.trackConcurrency?.({ method, path }) ?? false;
    if (tracked) {
      inFlight++;
      proxy.maxConcurrent = Math.max(proxy.maxConcurrent, inFlight);
      res.once('close', () => inFlight--);
    }
    const rule = pickRule(method, path);
    if (!rule) return forward(req, res, seen);
    seen.fault = rule.name;
    const a = rule.action;
    if ('respond' in a) {
      seen.status = a.respond;
      void drain(req).then(() => {
        res.writeHead(a.respond, { 'content-type': 'application/json', ...a.headers });
        res.end(a.body ?? '');
      });
      return;
    }
    if ('resetAfterBytes' in a) {
      let got = 0;
      const cut = () => req.socket.destroy();
      if (a.resetAfterBytes <= 0) return cut();
      req.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= a.resetAfterBytes) cut();
      });
      req.on('end', cut);
      return;
    }
    if ('hang' in a) return void drain(req);
    if ('cutResponseAfterBytes' in a) return forward(req, res, seen, undefined, a.cutResponseAfterBytes);
    forward(req, res, seen, a);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  proxy.host = `127.0.0.1:${port}`;
  proxy.url = `http://${proxy.host}`;
  return proxy;
}
