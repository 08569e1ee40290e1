// Loads proto/bkcache/v1/cache.proto at run time (no generated code) and
// declares the TypeScript shapes @grpc/proto-loader gives its messages with
// the options below, shared by the daemon and the client library.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number, // sizes fit in 2^53; Number keeps the API plain
  enums: String,
  defaults: true,
  oneofs: true, // a virtual `msg` field names the member of a oneof that is set
};

/** Finds proto/ from src/server (vitest) or dist/src/server (built): walk up to the package root. */
export function protoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'proto');
    if (existsSync(path.join(p, 'bkcache/v1/cache.proto'))) return p;
    dir = path.dirname(dir);
  }
  throw new Error('proto/bkcache/v1/cache.proto not found next to the bkcache package');
}

let cached: { def: protoLoader.PackageDefinition; service: grpc.ServiceDefinition; ctor: grpc.ServiceClientConstructor } | undefined;

export function cacheProto() {
  if (!cached) {
    const def = protoLoader.loadSync('bkcache/v1/cache.proto', { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { bkcache: { v1: { CacheService: grpc.ServiceClientConstructor } } };
    const ctor = pkg.bkcache.v1.CacheService;
    cached = { def, service: ctor.service, ctor };
  }
  return cached;
}

// ------------------------------------------------------------- wire shapes
// Field names follow the proto (keepCase). Unset sub-messages decode as null.

export interface WireDescriptor {
  media_type: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
  urls: string[];
}

export interface WireSpec {
  spec: string;
  type: string;
  attrs: Record<string, string>;
}

export interface WireHint {
  source: number;
  index: number;
}
export interface WireRecord {
  id: number;
  digest: string;
  hint?: WireHint | null;
}
export interface WireLink {
  record_id: number;
  src_id: number;
  input: number;
  selector: string;
}
export interface WireResult {
  record_id: number;
  created_at: string;
  layers: WireDescriptor[];
  layer_hints?: (WireHint | null)[];
}
export interface WireGraph {
  records: WireRecord[];
  links: WireLink[];
  results: WireResult[];
}

export interface WireBlobChunk {
  digest: string;
  offset: number;
  data: Buffer;
}

export interface WireExportRequest {
  msg?: 'start' | 'graph' | 'graph_done' | 'blob_chunk' | 'blob_done';
  start?: { target: WireSpec | null } | null;
  graph?: WireGraph | null;
  graph_done?: { content_store_dir: string } | null;
  blob_chunk?: WireBlobChunk | null;
  blob_done?: { digest: string } | null;
}

export interface WireProgress {
  kind: string;
  digest: string;
  size: number;
  status: string;
  sent: number;
  tag: string;
}

export interface WireStats {
  uploaded: number;
  uploaded_bytes: number;
  skipped: number;
  skipped_bytes: number;
  mounted: number;
  mounted_bytes: number;
  received_bytes: number;
}

export interface WireExportDone {
  manifest: WireDescriptor | null;
  config: WireDescriptor | null;
  target: string;
  tag: string;
  stats: WireStats | null;
  warnings: string[];
}

export interface WireExportResponse {
  msg?: 'need_blobs' | 'progress' | 'done';
  need_blobs?: { digests: string[] } | null;
  progress?: WireProgress | null;
  done?: WireExportDone | null;
}

export interface WireSummary {
  kind: string;
  media_type: string;
  manifest: string;
  config: string;
  layers: number;
  records: number;
}

export interface WireImportRequest {
  sources: WireSpec[];
  ignore_error: boolean;
  verify_blobs?: boolean;
}

export interface WireImportResponse {
  hit: boolean;
  hit_index: number;
  manifest: WireDescriptor | null;
  kind: string;
  summary: WireSummary | null;
  graph: WireGraph | null;
  misses: { index: number; spec: string; code: string; message: string }[];
  warnings: string[];
  dropped?: string[];
}

export interface WireFetchBlobRequest {
  source: WireSpec | null;
  descriptor: WireDescriptor | null;
  digest: string;
  offset: number;
}

export interface WireInspectRequest {
  source: WireSpec | null;
  include_graph: boolean;
}

export interface WireInspectResponse {
  summary: WireSummary | null;
  warnings: string[];
  graph: WireGraph | null;
  manifest: WireDescriptor | null;
  config: WireDescriptor | null;
}

export interface WireCopyRequest {
  sources: WireSpec[];
  target: WireSpec | null;
}

export interface WireCopyResponse {
  result: WireExportDone | null;
  sources: { spec: string; summary: WireSummary | null }[];
}

export interface WireCopyEvent {
  event?: 'progress' | 'done';
  progress?: WireProgress | null;
  done?: WireCopyResponse | null;
}
