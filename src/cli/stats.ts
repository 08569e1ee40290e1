// `bkcache stats`: the gateway's per-tenant cache counters from a running
// daemon, read from its Prometheus endpoint (--metrics-addr of `serve`).
// Answers "is this cache used at all?" (hits against misses, bytes served)
// and "what did mode=max cost us?" (blobs and bytes pushed), per tenant and,
// when the daemon labels them, per repository.
// Text format: https://prometheus.io/docs/instrumenting/exposition_formats/
import { BkError } from '../errors.js';
import { POLICY_COUNTERS } from '../gateway/policies/metrics.js';
import { parseFlags, parseFormat, type FlagOptions } from './args.js';
import { EXIT } from './exit-codes.js';
import { humanBytes } from './format.js';
import type { Command } from './commands.js';
import { UsageError } from './usage-error.js';

/** /metrics bodies read at most: a daemon's are far smaller; anything bigger is not one. */
const MAX_BODY = 16 << 20;
const TIMEOUT_MS = 10_000;

export interface Usage {
  hits: number;
  misses: number;
  blobsServed: number;
  bytesServed: number;
  blobsPushed: number;
  bytesPushed: number;
  merges: number;
  repairs: number;
  trims: number;
}

export interface Stats {
  total: Usage;
  tenants: Record<string, Usage>;
  /** Present when the daemon labels by repository (gateway.metricsRepositoryLabel). */
  repositories?: Record<string, Usage>;
}

const empty = (): Usage => ({ hits: 0, misses: 0, blobsServed: 0, bytesServed: 0, blobsPushed: 0, bytesPushed: 0, merges: 0, repairs: 0, trims: 0 });

type Name = keyof typeof POLICY_COUNTERS;

function field(name: Name, labels: Record<string, string>): keyof Usage | undefined {
  switch (name) {
    case 'bkcache_gateway_cache_lookups_total':
      return labels.result === 'hit' ? 'hits' : labels.result === 'miss' ? 'misses' : undefined;
    case 'bkcache_gateway_blobs_served_total':
      return 'blobsServed';
    case 'bkcache_gateway_blob_bytes_served_total':
      return 'bytesServed';
    case 'bkcache_gateway_blobs_pushed_total':
      return 'blobsPushed';
    case 'bkcache_gateway_blob_bytes_pushed_total':
      return 'bytesPushed';
    case 'bkcache_gateway_policy_events_total':
      return labels.event === 'merge' ? 'merges' : labels.event === 'repair' ? 'repairs' : labels.event === 'trim' ? 'trims' : undefined;
  }
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y;

function parseLabels(s: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  LABEL.lastIndex = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = LABEL.exec(s))) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    pos = LABEL.lastIndex;
  }
  return pos === s.trim().length || s.slice(pos).trim() === '' ? out : undefined;
}

/** The policy counters in a /metrics body, summed per tenant and repository; other lines are ignored. */
export function parseStats(text: string): Stats {
  const stats: Stats = { total: empty(), tenants: {} };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m || !(m[1]! in POLICY_COUNTERS)) continue;
    const labels = parseLabels(m[2] ?? '');
    const value = Number(m[3]);
    if (!labels || !Number.isFinite(value)) continue;
    const f = field(m[1] as Name, labels);
    if (!f) continue;
    stats.total[f] += value;
    const t = labels.tenant ?? '';
    (stats.tenants[t] ??= empty())[f] += value;
    if (labels.repository !== undefined) (((stats.repositories ??= {})[labels.repository] ??= empty())[f] += value);
  }
  return stats;
}

async function fetchMetrics(addr: string): Promise<string> {
  if (!/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/.test(addr)) throw new UsageError(`--metrics-addr wants HOST:PORT, got ${JSON.stringify(addr)}`);
  const url = `http://${addr}/metrics`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    throw new BkError('UNAVAILABLE', `cannot read ${url}: ${(err as Error).message}`);
  }
  if (res.status !== 200) throw new BkError('UNAVAILABLE', `${url} answered ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY) throw new BkError('RESOURCE_EXHAUSTED', `${url} is over ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body ?? []) {
    size += (c as Uint8Array).length;
    if (size > MAX_BODY) throw new BkError('RESOURCE_EXHAUSTED', `${url} is over ${MAX_BODY} bytes`);
    chunks.push(Buffer.from(c as Uint8Array));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function ratio(u: Usage): string {
  const n = u.hits + u.misses;
  return n ? `${Math.round((100 * u.hits) / n)}%` : '-';
}

function table(title: string, rows: Record<string, Usage>): string {
  const names = Object.keys(rows).sort();
  const head = [title, 'hits', 'misses', 'hit%', 'served', 'pushed', 'merges', 'repairs', 'trims'];
  const body = names.map((k) => {
    const u = rows[k]!;
    return [k || '-', String(u.hits), String(u.misses), ratio(u), `${u.blobsServed} (${humanBytes(u.bytesServed)})`, `${u.blobsPushed} (${humanBytes(u.bytesPushed)})`, String(u.merges), String(u.repairs), String(u.trims)];
  });
  const all = [head, ...body];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const STATS_FLAGS = { 'metrics-addr': { type: 'string' }, format: { type: 'string' } } as const satisfies FlagOptions;

export const stats: Command = {
  summary: "Print a running daemon's gateway cache counters: hits, misses, bytes served and pushed, merges, repairs",
  flags: STATS_FLAGS,
  help: `Usage: bkcache stats --metrics-addr HOST:PORT [--format json|text]

Reads the /metrics endpoint of a running daemon (bkcache serve --metrics-addr)
and prints its gateway's cache counters per tenant, and per repository when
the daemon sets gateway.metricsRepositoryLabel: cache manifest hits and
misses, blobs and bytes served and pushed, merges, repairs and trims. The
counters run from the daemon's start.

  --metrics-addr H:P    the daemon's metrics address
  --format json|text    json prints one object:
                        {"total": USAGE, "tenants": {TENANT: USAGE}, "repositories"?: {...}}
                        USAGE = {"hits","misses","blobsServed","bytesServed","blobsPushed",
                                 "bytesPushed","merges","repairs","trims"}

Exit codes: 0 printed, 1 the daemon could not be read, 2 bad usage.
`,
  async run(args) {
    const { values } = parseFlags(args, STATS_FLAGS);
    if (values.help) {
      process.stdout.write(this.help);
      return EXIT.OK;
    }
    if (!values['metrics-addr']) throw new UsageError('stats needs --metrics-addr HOST:PORT');
    const format = parseFormat(values.format);
    const s = parseStats(await fetchMetrics(values['metrics-addr']));
    if (format === 'json') process.stdout.write(JSON.stringify(s) + '\n');
    else {
      process.stdout.write(table('tenant', s.tenants));
      if (s.repositories) process.stdout.write('\n' + table('repository', s.repositories));
      const t = s.total;
      process.stdout.write(`\ntotal: ${t.hits} hits, ${t.misses} misses (${ratio(t)}), served ${humanBytes(t.bytesServed)}, pushed ${humanBytes(t.bytesPushed)}\n`);
    }
    return EXIT.OK;
  },
};
