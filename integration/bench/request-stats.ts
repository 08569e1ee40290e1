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
}

const out = process.env.BKCACHE_BENCH_STATS;
if (out) {
  const stats: RequestStats = { byMethod: {}, connections: 0, cpuS: 0 };
  dc.subscribe('undici:request:create', (m) => {
    const method = (m as { request: { method: string } }).request.method;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
  });
  dc.subscribe('undici:client:connected', () => stats.connections++);
  process.on('exit', () => {
    const u = process.cpuUsage();
    stats.cpuS = (u.user + u.system) / 1e6;
    writeFileSync(out, JSON.stringify(stats));
  });
}
