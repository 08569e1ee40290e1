// The gateway's part of /metrics (Prometheus text 0.0.4): requests by route,
// method and status; bytes to and from clients; and cache-manifest lookups by
// tier and outcome, which tell how often the tenant tier misses and the
// global tier catches it. Rendered into the daemon's own /metrics.

type Counter = Map<string, number>;

function key(labels: Record<string, string>): string {
  return `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`)
    .join(',')}}`;
}

function inc(m: Counter, labels: Record<string, string>, n = 1): void {
  const k = key(labels);
  m.set(k, (m.get(k) ?? 0) + n);
}

export class GatewayMetrics {
  private readonly requests: Counter = new Map();
  private readonly bytes: Counter = new Map();
  private readonly cache: Counter = new Map();

  request(route: string, method: string, status: number): void {
    inc(this.requests, { route, method, status: String(status) });
  }

  addBytes(direction: 'received' | 'sent', n: number): void {
    if (n > 0) inc(this.bytes, { direction }, n);
  }

  /** A cache manifest looked up by tag: `tier` is tenant, global or none (no tiers configured). */
  cacheManifest(tier: string, result: 'hit' | 'miss'): void {
    inc(this.cache, { tier, result });
  }

  render(): string {
    const out: string[] = [];
    const counter = (name: string, help: string, m: Counter) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [k, v] of m) out.push(`${name}${k} ${v}`);
    };
    counter('bkcache_gateway_requests_total', 'Registry gateway requests by route, method and HTTP status.', this.requests);
    counter('bkcache_gateway_bytes_total', 'Registry gateway body bytes received from and sent to clients.', this.bytes);
    counter('bkcache_gateway_cache_manifests_total', 'Cache manifest lookups by tag, by tier and result.', this.cache);
    return out.join('\n') + '\n';
  }
}
