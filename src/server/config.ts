// Daemon settings: defaults, a YAML or JSON config file, then flags on top.
// Unknown keys in the file are errors, so a typo never silently falls back
// to a default. Example (YAML):
//
//   listen: ["unix:///run/bkcache/bkcache.sock", "tcp://127.0.0.1:7070"]
//   root: /var/lib/bkcache/store          # the embedded default store
//   metricsAddr: 127.0.0.1:9464           # Prometheus text on /metrics
//   tls: { cert: server.pem, key: server.key, ca: ca.pem, clientAuth: true }
//   registry:
//     hosts: { "127.0.0.1:5000": { insecure: true, mirrors: [] } }
//     credentialsFile: /root/.docker/config.json
//     concurrency: 4
//     timeouts: { headersSeconds: 30, commitSeconds: 600, idleSeconds: 60, manifestSeconds: 60,
//                 minBytesPerSecond: 1024, maxResumes: 16 }   # registry waits (README: Registries)
//   limits: { maxConcurrentExports: 4, maxConcurrentImports: 16, maxConcurrentFetches: 16, maxQueued: 64,
//             maxExportsPerTenant: 2, maxImportsPerTenant: 8, maxFetchesPerTenant: 8, maxQueuedPerTenant: 32,
//             idleTimeoutSeconds: 60, maxGraphBytes: 8388608, maxMetadataBytes: 16384,
//             maxMessageBytes: 8388608, maxRecords: 500000, blobChunkBytes: 1048576 }
//   shutdownGraceSeconds: 30
//   log: { level: info }                  # debug | info | error | off
//   auth:                                 # bearer tokens; without a key, unix sockets only
//     audience: bkcache                   # the aud tokens must carry (default bkcache)
//     hmacSecretFile: token.secret        # HS256, and/or
//     publicKeyFile: token.pub.pem        # ES256 (P-256) or RS256; privateKeyFile is for `bkcache token`
//     allowUnauthenticatedTcp: false
//   tiers:                                # type=tier,name=N → [tenant, global] (see auth/tiers.ts)
//     global: "registry.internal/cache/global/{name}"   # quoted: braces open a YAML flow map
//     tenant: "registry.internal/cache/{tenant}/{name}"
//     tenants: { bigco: { global: "…", tenant: "…" } }
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { BackendContext } from '../cache/remote/index.js';
import { invalidArgument } from '../errors.js';
import { defaultAuthSettings, type AuthSettings } from './auth/keys.js';
import { checkTemplate, type TierSettings, type TierTemplates } from './auth/tiers.js';
import { TENANT_RE } from './auth/token.js';
import { DEFAULT_GRAPH_LIMITS, type GraphLimits } from '../api/wire.js';
import { MAX_METADATA_BYTES } from '../store/content.js';
import type { SocketAccess } from '../api/address.js';
import { parseGatewayConfig, type GatewayConfig } from '../gateway/config.js';

export interface TlsFiles {
  cert: string;
  key: string;
  /** CA bundle that client certificates must chain to (mTLS). */
  ca?: string;
  /** Require and verify client certificates against `ca`. */
  clientAuth?: boolean;
}

export interface Limits extends GraphLimits {
  maxConcurrentExports: number;
  /** Import, Inspect and Copy's reading side. */
  maxConcurrentImports: number;
  /** FetchBlob streams, a pool of their own so long blob reads never starve Import. */
  maxConcurrentFetches: number;
  /** Slots one tenant may hold at once; 0: half of the pool, rounded up (see perTenantLimit). */
  maxExportsPerTenant: number;
  maxImportsPerTenant: number;
  maxFetchesPerTenant: number;
  /** Calls waiting for a slot beyond this are refused with RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /** The same, per tenant; 0: half of maxQueued. */
  maxQueuedPerTenant: number;
  /**
   * A stream that makes no progress in either direction for this long ends
   * with DEADLINE_EXCEEDED and frees its slot: an Export whose client sends
   * nothing while the daemon waits for it, a FetchBlob whose client reads nothing.
   */
  idleTimeoutSeconds: number;
  /** Request metadata (headers, the authorization token among them) larger than this is refused at once. */
  maxMetadataBytes: number;
  maxMessageBytes: number;
  blobChunkBytes: number;
  /**
   * Sources of one Import, Copy or CopyStream, counted after tier specs
   * expand. Each costs a lookup on a store (a registry request with the
   * daemon's credentials), so without a bound one message of 30 000 specs
   * held a slot for half a minute of daemon CPU, or sent 30 000 requests.
   */
  maxSources: number;
}

/** A per-tenant cap: the configured one, else half of the pool (at least 1), never more than the pool. */
export function perTenantLimit(configured: number, pool: number): number {
  return Math.min(pool, configured > 0 ? configured : Math.max(1, Math.ceil(pool / 2)));
}

export const LOG_LEVELS = ['debug', 'info', 'error', 'off'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const isLogLevel = (v: string): v is LogLevel => (LOG_LEVELS as readonly string[]).includes(v);

export interface DaemonConfig {
  /** Empty: the default unix socket. */
  listen: string[];
  /** Mode and group of unix sockets (bkcache serve --socket-mode, --socket-group). */
  socket?: SocketAccess;
  root: string;
  metricsAddr?: string;
  tls?: TlsFiles;
  backend: BackendContext;
  limits: Limits;
  shutdownGraceMs: number;
  logLevel: LogLevel;
  /** Bearer-token auth; off (unix sockets only) until a key file is set. */
  auth: AuthSettings;
  /** The global and tenant cache templates behind `type=tier` specs. */
  tiers?: TierSettings;
  /** The registry gateway (src/gateway/config.ts); off when absent. */
  gateway?: GatewayConfig;
}

export function defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'bkcache', 'store');
}

export const DEFAULT_LIMITS: Limits = {
  ...DEFAULT_GRAPH_LIMITS,
  maxConcurrentExports: 4,
  maxConcurrentImports: 16,
  maxConcurrentFetches: 16,
  maxExportsPerTenant: 0,
  maxImportsPerTenant: 0,
  maxFetchesPerTenant: 0,
  maxQueued: 64,
  maxQueuedPerTenant: 0,
  idleTimeoutSeconds: 60,
  maxMetadataBytes: 16 << 10,
  maxMessageBytes: 8 << 20,
  blobChunkBytes: 1 << 20,
  maxSources: 64,
};

export function defaultConfig(): DaemonConfig {
  return { listen: [], root: defaultRoot(), backend: {}, limits: { ...DEFAULT_LIMITS }, shutdownGraceMs: 30_000, logLevel: 'info', auth: defaultAuthSettings() };
}

type Obj = Record<string, unknown>;

function obj(v: unknown, where: string, keys: string[]): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidArgument(`${where} must be a mapping`, { reason: 'invalid-config' });
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) throw invalidArgument(`${where}: unknown key ${JSON.stringify(k)} (known: ${keys.join(', ')})`, { reason: 'invalid-config' });
  }
  return v as Obj;
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || !v) throw invalidArgument(`${where} must be a non-empty string`, { reason: 'invalid-config' });
  return v;
}

function posInt(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw invalidArgument(`${where} must be a positive integer`, { reason: 'invalid-config' });
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(`${where} must be true or false`, { reason: 'invalid-config' });
  return v;
}

/** `registry.timeouts`: seconds (fractions allowed) and counts, onto the client's RegistryTimeouts. */
function registryTimeouts(v: unknown): NonNullable<NonNullable<BackendContext['registry']>['timeouts']> {
  const seconds = { headersSeconds: 'headersMs', commitSeconds: 'commitMs', idleSeconds: 'idleMs', manifestSeconds: 'manifestMs' } as const;
  const counts = ['minBytesPerSecond', 'maxResumes'] as const;
  const t = obj(v, 'registry.timeouts', [...Object.keys(seconds), ...counts]);
  const out: Record<string, number> = {};
  for (const [k, field] of Object.entries(seconds)) {
    if (t[k] === undefined) continue;
    const n = t[k];
    if (typeof n !== 'number' || !(n > 0) || !Number.isFinite(n)) throw invalidArgument(`registry.timeouts.${k} must be a number > 0`, { reason: 'invalid-config' });
    out[field] = n * 1000;
  }
  for (const k of counts) {
    const n = t[k];
    if (n === undefined) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw invalidArgument(`registry.timeouts.${k} must be an integer >= 0`, { reason: 'invalid-config' });
    out[k] = n;
  }
  return out;
}

/** Applies the contents of a config file; relative paths are relative to the file. */
export function applyConfigFile(cfg: DaemonConfig, file: string): DaemonConfig {
  const text = readFileSync(file, 'utf8');
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw invalidArgument(`${file}: ${(err as Error).message}`, { reason: 'invalid-config' });
  }
  if (doc === null || doc === undefined) return cfg;
  const base = path.dirname(path.resolve(file));
  const rel = (p: string) => path.resolve(base, p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p);
  const o = obj(doc, file, ['listen', 'root', 'metricsAddr', 'tls', 'registry', 'limits', 'shutdownGraceSeconds', 'log', 'auth', 'tiers', 'gateway']);
  if (o.listen !== undefined) {
    const l = Array.isArray(o.listen) ? o.listen : [o.listen];
    cfg.listen = l.map((a, i) => str(a, `listen[${i}]`));
  }
  if (o.root !== undefined) cfg.root = rel(str(o.root, 'root'));
  if (o.metricsAddr !== undefined) cfg.metricsAddr = str(o.metricsAddr, 'metricsAddr');
  if (o.tls !== undefined) {
    const t = obj(o.tls, 'tls', ['cert', 'key', 'ca', 'clientAuth']);
    cfg.tls = { cert: rel(str(t.cert, 'tls.cert')), key: rel(str(t.key, 'tls.key')) };
    if (t.ca !== undefined) cfg.tls.ca = rel(str(t.ca, 'tls.ca'));
    if (t.clientAuth !== undefined) cfg.tls.clientAuth = bool(t.clientAuth, 'tls.clientAuth');
    if (cfg.tls.clientAuth && !cfg.tls.ca) throw invalidArgument('tls.clientAuth needs tls.ca', { reason: 'invalid-config' });
  }
  if (o.registry !== undefined) {
    const r = obj(o.registry, 'registry', ['hosts', 'credentialsFile', 'concurrency', 'timeouts']);
    const reg: NonNullable<BackendContext['registry']> = {};
    if (r.hosts !== undefined) {
      const hosts = obj(r.hosts, 'registry.hosts', Object.keys(r.hosts as Obj));
      reg.hosts = {};
      for (const [h, v] of Object.entries(hosts)) {
        const hv = obj(v, `registry.hosts.${h}`, ['insecure', 'mirrors']);
        reg.hosts[h] = {};
        if (hv.insecure !== undefined) reg.hosts[h].insecure = bool(hv.insecure, `registry.hosts.${h}.insecure`);
        if (hv.mirrors !== undefined) {
          if (!Array.isArray(hv.mirrors)) throw invalidArgument(`registry.hosts.${h}.mirrors must be a list`, { reason: 'invalid-config' });
          reg.hosts[h].mirrors = hv.mirrors.map((m, i) => str(m, `registry.hosts.${h}.mirrors[${i}]`));
        }
      }
    }
    if (r.credentialsFile !== undefined) reg.dockerConfig = rel(str(r.credentialsFile, 'registry.credentialsFile'));
    if (r.concurrency !== undefined) reg.concurrency = posInt(r.concurrency, 'registry.concurrency');
    if (r.timeouts !== undefined) reg.timeouts = registryTimeouts(r.timeouts);
    cfg.backend = { ...cfg.backend, registry: reg };
  }
  if (o.limits !== undefined) {
    const names = Object.keys(DEFAULT_LIMITS);
    const l = obj(o.limits, 'limits', names);
    for (const [k, v] of Object.entries(l)) (cfg.limits as unknown as Record<string, number>)[k] = posInt(v, `limits.${k}`);
    if (cfg.limits.maxGraphBytes >= MAX_METADATA_BYTES) {
      // A graph's config is written from it and must be readable back (configs over 16 MiB are refused on import).
      throw invalidArgument(`limits.maxGraphBytes must be below ${MAX_METADATA_BYTES}, the largest config an import reads`, { reason: 'invalid-config' });
    }
  }
  if (o.shutdownGraceSeconds !== undefined) {
    const g = o.shutdownGraceSeconds;
    if (typeof g !== 'number' || !(g >= 0)) throw invalidArgument('shutdownGraceSeconds must be a number >= 0', { reason: 'invalid-config' });
    cfg.shutdownGraceMs = g * 1000;
  }
  if (o.log !== undefined) {
    const lg = obj(o.log, 'log', ['level']);
    const level = str(lg.level, 'log.level');
    if (!isLogLevel(level)) throw invalidArgument(`log.level ${level}: want debug, info, error or off`, { reason: 'invalid-config' });
    cfg.logLevel = level;
  }
  if (o.auth !== undefined) applyAuth(cfg, o.auth, rel);
  if (o.tiers !== undefined) cfg.tiers = parseTiers(o.tiers);
  if (o.gateway !== undefined) cfg.gateway = parseGatewayConfig(o.gateway, rel);
  return cfg;
}

function applyAuth(cfg: DaemonConfig, v: unknown, rel: (p: string) => string): void {
  const keys = ['audience', 'issuer', 'hmacSecretFile', 'publicKeyFile', 'privateKeyFile', 'clockSkewSeconds', 'allowUnauthenticatedTcp'];
  const a = obj(v, 'auth', keys);
  const out: AuthSettings = { ...cfg.auth };
  if (a.audience !== undefined) out.audience = str(a.audience, 'auth.audience');
  if (a.issuer !== undefined) out.issuer = str(a.issuer, 'auth.issuer');
  for (const k of ['hmacSecretFile', 'publicKeyFile', 'privateKeyFile'] as const) if (a[k] !== undefined) out[k] = rel(str(a[k], `auth.${k}`));
  if (a.clockSkewSeconds !== undefined) {
    const n = a.clockSkewSeconds;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 600) throw invalidArgument('auth.clockSkewSeconds must be an integer from 0 to 600', { reason: 'invalid-config' });
    out.clockSkewSeconds = n;
  }
  if (a.allowUnauthenticatedTcp !== undefined) out.allowUnauthenticatedTcp = bool(a.allowUnauthenticatedTcp, 'auth.allowUnauthenticatedTcp');
  cfg.auth = out;
}

function templates(v: unknown, where: string): TierTemplates {
  const t = obj(v, where, ['global', 'tenant']);
  return { global: checkTemplate(str(t.global, `${where}.global`), `${where}.global`), tenant: checkTemplate(str(t.tenant, `${where}.tenant`), `${where}.tenant`) };
}

function parseTiers(v: unknown): TierSettings {
  const t = obj(v, 'tiers', ['global', 'tenant', 'tenants']);
  const out: TierSettings = { tenants: {} };
  if (t.global !== undefined || t.tenant !== undefined) out.default = templates({ global: t.global, tenant: t.tenant }, 'tiers');
  if (t.tenants !== undefined) {
    const per = obj(t.tenants, 'tiers.tenants', Object.keys(t.tenants as Obj));
    for (const [id, tv] of Object.entries(per)) {
      if (!TENANT_RE.test(id)) throw invalidArgument(`tiers.tenants: ${JSON.stringify(id)} is not a tenant id (lowercase letters, digits, '.', '_', '-')`, { reason: 'invalid-config' });
      out.tenants[id] = templates(tv, `tiers.tenants.${id}`);
    }
  }
  return out;
}
