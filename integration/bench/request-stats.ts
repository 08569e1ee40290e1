// Loaded with `node --import` into a CLI process a benchmark runs: counts the
// HTTP requests it sends (by method; retries, redirect hops and token fetches
// each count) and the connections it opens, through undici's diagnostics
// channels, and writes them with the process's own CPU time as JSON to
// $BKCACHE_BENCH_STATS when the process exits.
// https://undici.nodejs.org/#/docs/api/DiagnosticsChannel
import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

export interface RequestStats {
  byMethod: Record<string, number>;
  connections: number;
  /** User + system CPU seconds of the whole process. */
  cpuS: number;
  /** Milliseconds from the process's start to its first and last request of each method, and to its exit. */
  firstMs: Record<string, number>;
  lastMs: Record<string, number>;
  exitMs: number;
}

const out = process.env.BKCACHE_BENCH_STATS;
if (out) {
  const stats: RequestStats = { byMethod: {}, connections: 0, cpuS: 0, firstMs: {}, lastMs: {}, exitMs: 0 };
  dc.subscribe('undici:request:create', (m) => {
    const method = (m as { request: { method: string } }).request.method;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
    const now = Math.round(performance.now());
    stats.firstMs[method] ??= now;
    stats.lastMs[method] = now;
  });
  dc.subscribe('undici:client:connected', () => stats.connections++);
  process.on('exit', () => {
    const u = process.cpuUsage();
    stats.cpuS = (u.user + u.system) / 1e6;
    stats.exitMs = Math.round(performance.now());
    writeFileSync(out, JSON.stringify(stats));
  });
}
