// Prometheus text exposition (format 0.0.4) on GET /metrics, written by hand:
// a handful of counters and one histogram do not justify a client library.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 120, 600];

type Labels = Record<string, string>;

function labelKey(l: Labels): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly bytes = new Map<string, number>();
  private readonly inflight = new Map<string, number>();
  private readonly durations = new Map<string, { buckets: number[]; sum: number; count: number }>();
  /** More exposition text appended to /metrics (the registry gateway's). */
  readonly extra: (() => string)[] = [];

  /** One finished call: its method, status name and duration. */
  observeCall(method: string, code: string, seconds: number): void {
    const k = labelKey({ method, code });
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    const dk = labelKey({ method });
    let h = this.durations.get(dk);
    if (!h) this.durations.set(dk, (h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h!.buckets[i]!++;
    });
    h.sum += seconds;
    h.count++;
  }

  /** Bytes moved: direction "received" (from clients), "sent" (to clients) or "uploaded" (to targets). */
  addBytes(direction: 'received' | 'sent' | 'uploaded', n: number): void {
    if (n <= 0) return;
    const k = labelKey({ direction });
    this.bytes.set(k, (this.bytes.get(k) ?? 0) + n);
  }

  callStarted(method: string): () => void {
    const k = labelKey({ method });
    this.inflight.set(k, (this.inflight.get(k) ?? 0) + 1);
    return () => this.inflight.set(k, (this.inflight.get(k) ?? 1) - 1);
  }

  render(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, type: string, m: Map<string, number>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [k, v] of m) out.push(`${name}${k} ${v}`);
    };
    counter('bkcache_requests_total', 'Finished gRPC calls by method and status code.', 'counter', this.requests);
    counter('bkcache_bytes_total', 'Blob bytes received from clients, sent to clients, or uploaded to targets.', 'counter', this.bytes);
    counter('bkcache_inflight_requests', 'gRPC calls in progress by method.', 'gauge', this.inflight);
    out.push('# HELP bkcache_request_duration_seconds Duration of gRPC calls by method.', '# TYPE bkcache_request_duration_seconds histogram');
    for (const [k, h] of this.durations) {
      const inner = k.slice(1, -1);
      BUCKETS.forEach((b, i) => out.push(`bkcache_request_duration_seconds_bucket{${inner},le="${b}"} ${h.buckets[i]}`));
      out.push(`bkcache_request_duration_seconds_bucket{${inner},le="+Inf"} ${h.count}`);
      out.push(`bkcache_request_duration_seconds_sum${k} ${h.sum}`, `bkcache_request_duration_seconds_count${k} ${h.count}`);
    }
    return out.join('\n') + '\n' + this.extra.map((f) => f()).join('');
  }

  /** Serves /metrics on host:port; resolves with the bound address. */
  async listen(addr: string): Promise<{ server: http.Server; address: string }> {
    const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(addr.replace(/^https?:\/\//, ''));
    if (!m) throw new Error(`invalid metrics address ${JSON.stringify(addr)}: want host:port`);
    const server = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.render());
      } else {
        res.writeHead(404).end();
      }
    });
    const host = (m[1] || '127.0.0.1').replace(/^\[|\]$/g, '');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    return { server, address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` };
  }
}
