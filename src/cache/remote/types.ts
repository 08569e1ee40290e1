// A cache backend turns a spec's attributes into a store and a place in it,
// like BuildKit's cache/remotecache/<type> packages. One folder per `type=`.
import type { Descriptor } from '../../oci/descriptor.js';
import type { RegistryTimeouts } from '../../store/registry/client.js';
import type { ContentStore } from '../../store/types.js';
import type { ShapeOptions } from '../export.js';

/** Settings of the process, not of one spec: registry hosts, credentials, limits. */
export interface BackendContext {
  registry?: {
    /** Per-host settings, e.g. { "127.0.0.1:5000": { insecure: true } }. */
    hosts?: Record<string, { insecure?: boolean; mirrors?: string[] }>;
    /** Path of a Docker config.json with credentials. */
    dockerConfig?: string;
    concurrency?: number;
    /**
     * Keep-alive sockets per registry host (default 16). Requests beyond it
     * wait in the pool, so a caller running more requests at once (verify's
     * HEADs) raises it to match.
     */
    connectionsPerHost?: number;
    /** How long registry requests may wait (daemon config `registry.timeouts`). */
    timeouts?: Partial<RegistryTimeouts>;
  };
}

export interface ImportTarget {
  store: ContentStore;
  /** Resolves the manifest to import; NOT_FOUND when the tag or digest is absent. */
  resolve(opts?: { signal?: AbortSignal }): Promise<Descriptor>;
  /**
   * Resolves and reads the manifest in one request, where the backend can
   * (a registry's GET by tag); readManifest() in index.ts falls back to
   * resolve() and a fetch.
   */
  read?(opts?: { signal?: AbortSignal }): Promise<{ desc: Descriptor; bytes: Buffer }>;
  /** For messages: "local:/dir tag=latest". */
  name: string;
  /** The tag or digest read, in `store`: an export to the same tag replaces what was read. */
  reference?: string;
}

export interface ExportTarget {
  store: ContentStore;
  tag: string;
  shape: ShapeOptions;
  name: string;
}

export interface Backend {
  readonly type: string;
  /** The attributes of this type besides the common export options (spec-attrs.ts); any other is refused. */
  readonly attrs: readonly string[];
  openImport(attrs: Record<string, string>, ctx: BackendContext): Promise<ImportTarget>;
  openExport(attrs: Record<string, string>, ctx: BackendContext): Promise<ExportTarget>;
}
