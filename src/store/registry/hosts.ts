// Per-registry settings, keyed by host[:port] as written in references.
// The daemon config feeds `hosts`; buildctl's `registry.insecure=true`
// attribute arrives as `insecure` for the one registry a cache spec names.
import { invalidArgument } from '../../errors.js';
import { apiHost, DOCKER_HUB } from '../../oci/reference.js';

export interface HostSettings {
  /** Talk plain HTTP to this host (never the default: credentials would travel in clear). */
  insecure?: boolean;
  /** Blob transfers in flight at once to this host (default 4). */
  maxConcurrency?: number;
  /**
   * Upload blobs in PATCH chunks of this many bytes instead of one PUT.
   * Raised to 5 MiB and to the registry's OCI-Chunk-Min-Length when smaller;
   * a registry minimum above 64 MiB gets one streamed PUT instead (blobs.ts).
   */
  chunkSize?: number;
}

export interface Endpoint {
  /** The registry name as in references ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** The host API requests go to ("registry-1.docker.io" for docker.io). */
  host: string;
  /** "https://host" or, when insecure, "http://host". */
  origin: string;
  settings: Required<Pick<HostSettings, 'maxConcurrency'>> & HostSettings;
}

export const DEFAULT_MAX_CONCURRENCY = 4;

/** Keep-alive sockets per origin when the caller sets none (RegistryClientOptions.connectionsPerHost). */
export const DEFAULT_CONNECTIONS_PER_HOST = 16;

export interface EndpointOptions {
  insecure?: boolean;
  hosts?: Record<string, HostSettings>;
  maxConcurrency?: number;
  chunkSize?: number;
}

/**
 * Settings for a registry: the explicit per-host entry wins over the
 * store-wide options. Docker Hub's entry may be written under any of its names.
 */
export function resolveEndpoint(registry: string, opts: EndpointOptions = {}): Endpoint {
  const host = apiHost(registry);
  const hosts = opts.hosts ?? {};
  const own =
    hosts[registry] ?? hosts[host] ?? (registry === DOCKER_HUB ? (hosts['index.docker.io'] ?? hosts['registry-1.docker.io']) : undefined) ?? {};
  const maxConcurrency = own.maxConcurrency ?? opts.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
    throw invalidArgument(`maxConcurrency for ${registry} must be a positive integer`, { reason: 'bad-option' });
  }
  const insecure = own.insecure ?? opts.insecure ?? false;
  const chunkSize = own.chunkSize ?? opts.chunkSize;
  if (chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize <= 0)) {
    throw invalidArgument(`chunkSize for ${registry} must be a positive integer`, { reason: 'bad-option' });
  }
  return {
    registry,
    host,
    origin: `${insecure ? 'http' : 'https'}://${host}`,
    settings: { ...own, insecure, maxConcurrency, chunkSize },
  };
}

/**
 * A URL as it may appear in messages: origin and path only. Upload URLs
 * carry state tokens and redirect targets carry signatures in the query.
 */
export function safeUrl(u: URL | string): string {
  try {
    const url = typeof u === 'string' ? new URL(u) : u;
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
