// Policy counters of /metrics, per tenant and (with
// gateway.metricsRepositoryLabel) per repository: cache manifest hits and
// misses, blobs and bytes served and pushed, merges, repairs, trims. They
// answer "is this cache used at all?" and "what did mode=max cost us?".
// Label values are bounded: past MAX_TENANTS tenants or MAX_REPOSITORIES
// repositories, new ones count under "_other", so no client can grow the
// series without bound by inventing names.
import type { Call } from '../context.js';

export const MAX_TENANTS = 1000;
export const MAX_REPOSITORIES = 500;
export const OTHER = '_other';
export const ANONYMOUS = '_anonymous';

export type PolicyEvent = 'merge' | 'repair' | 'trim';

/** The counters, with their HELP text; names are what `bkcache stats` reads. */
export const POLICY_COUNTERS = {
  bkcache_gateway_cache_lookups_total: 'Cache manifest lookups by tag through the gateway, by tenant and result (hit, miss).',
  bkcache_gateway_blobs_served_total: 'Blobs served to clients (GET, whole or ranged).',
  bkcache_gateway_blob_bytes_served_total: 'Blob bytes served to clients.',
  bkcache_gateway_blobs_pushed_total: 'Blobs pushed by clients (uploads completed and mounts).',
  bkcache_gateway_blob_bytes_pushed_total: 'Blob bytes pushed by clients.',
  bkcache_gateway_policy_events_total: 'Policy work done on reads and writes: merges of a tag family, repairs of broken caches, trims that dropped results.',
} as const;
type Name = keyof typeof POLICY_COUNTERS;

const lookups = new WeakMap<Call, 'hit' | 'miss'>();

function escape(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

export class PolicyMetrics {
  /** gateway.metricsRepositoryLabel. */
  repositoryLabel = false;
  private readonly series = new Map<Name, Map<string, number>>();
  private readonly tenants = new Set<string>();
  private readonly repos = new Set<string>();

  private bounded(set: Set<string>, v: string, max: number): string {
    if (set.has(v)) return v;
    if (set.size >= max) return OTHER;
    set.add(v);
    return v;
  }

  private add(name: Name, call: Call, extra: Record<string, string>, n = 1): void {
    const labels: Record<string, string> = { tenant: this.bounded(this.tenants, call.tenant ?? ANONYMOUS, MAX_TENANTS) };
    if (this.repositoryLabel) labels.repository = this.bounded(this.repos, call.repo ?? '', MAX_REPOSITORIES);
    Object.assign(labels, extra);
    const key = `{${Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
    let m = this.series.get(name);
    if (!m) this.series.set(name, (m = new Map()));
    m.set(key, (m.get(key) ?? 0) + n);
  }

  /** Marks a manifest lookup by tag as a cache hit or a miss; counted when the call ends. */
  static lookup(call: Call, result: 'hit' | 'miss'): void {
    lookups.set(call, result);
  }

  event(call: Call, kind: PolicyEvent): void {
    this.add('bkcache_gateway_policy_events_total', call, { event: kind });
  }

  /** Counts what one finished call did, from its route, method and status. */
  observe(call: Call, status: number): void {
    const l = lookups.get(call);
    if (l && (status === 200 || l === 'miss')) this.add('bkcache_gateway_cache_lookups_total', call, { result: l });
    if (call.route === 'blob' && call.method === 'GET' && (status === 200 || status === 206)) {
      this.add('bkcache_gateway_blobs_served_total', call, {});
      this.add('bkcache_gateway_blob_bytes_served_total', call, {}, call.bytesOut);
    }
    // Bytes arrive on POST (monolithic), PATCH (chunks) and PUT (the last chunk); a blob counts once, when committed.
    if ((call.route === 'upload' || call.route === 'upload-start') && (status === 201 || status === 202)) {
      if (call.bytesIn > 0) this.add('bkcache_gateway_blob_bytes_pushed_total', call, {}, call.bytesIn);
      if (status === 201) this.add('bkcache_gateway_blobs_pushed_total', call, {});
    }
  }

  render(): string {
    const out: string[] = [];
    for (const [name, help] of Object.entries(POLICY_COUNTERS) as [Name, string][]) {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [k, v] of this.series.get(name) ?? []) out.push(`${name}${k} ${v}`);
    }
    return out.join('\n') + '\n';
  }
}
