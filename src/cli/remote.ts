// `inspect` and `copy` through a running daemon (`--addr`): same inputs and
// the same result shapes as the in-process inspectCache and copyCache, so the
// commands print identically either way.
import path from 'node:path';
import type { LoadedCache } from '../cache/import.js';
import type { CacheSummary, ExportResult } from '../cache/operations.js';
import { parseCacheSpec, type CacheSpec } from '../cache/spec.js';
import type { ProgressEvent } from '../cache/transfer.js';
import { progressFromWire } from '../api/progress.js';
import { connect, type CacheClient } from '../client/index.js';
import { UsageError } from './usage-error.js';

type Spec = string | CacheSpec;

/** A client for `addr` with buildctl's TLS flags (--tlscacert, --tlscert, --tlskey, --tlsservername). */
export function connectFromFlags(
  addr: string,
  flags: { tlscacert?: string; tlscert?: string; tlskey?: string; tlsservername?: string },
): CacheClient {
  const tls = { ca: flags.tlscacert, cert: flags.tlscert, key: flags.tlskey, serverName: flags.tlsservername };
  const any = Object.values(tls).some((v) => v !== undefined);
  if (any && !/^(tcp:\/\/)?[^/]+:\d+$/.test(addr)) throw new UsageError(`TLS flags need a tcp:// address; ${addr} is not one`);
  if (!tls.cert !== !tls.key) throw new UsageError('--tlscert and --tlskey go together');
  return connect(addr, any ? { tls } : {});
}

/**
 * The daemon resolves relative local paths against its root; a user typing
 * `dest=./cache` means their own working directory, so make it absolute here.
 */
export function absolutizeLocal(spec: Spec, cwd = process.cwd()): CacheSpec {
  const s = typeof spec === 'string' ? parseCacheSpec(spec) : { type: spec.type, attrs: { ...spec.attrs } };
  if (s.type === 'local') {
    for (const k of ['src', 'dest']) if (s.attrs[k] && !path.isAbsolute(s.attrs[k]!)) s.attrs[k] = path.resolve(cwd, s.attrs[k]!);
  }
  return s;
}

/** inspectCache over the daemon (closes `client`). `loaded` holds one part rebuilt from the graph (one per cache, also for inline). */
export async function remoteInspect(client: CacheClient, spec: Spec): Promise<{ summary: CacheSummary; loaded: LoadedCache }> {
  try {
    const res = await client.inspect(absolutizeLocal(spec), { includeGraph: true });
    const { config, descriptors } = res.graph!.marshal();
    const loaded: LoadedCache = {
      kind: res.summary.kind,
      mediaType: res.summary.mediaType,
      manifest: res.manifest,
      config: res.config ?? null,
      layerCount: res.summary.layers,
      recordCount: res.summary.records,
      parts: [{ config, provider: descriptors }],
      warnings: res.warnings,
    };
    return { summary: res.summary, loaded };
  } finally {
    client.close();
  }
}

/** copyCache over the daemon (closes `client`): every source merged into one graph, exported to `to`; progress events as they come. */
export async function remoteCopy(
  client: CacheClient,
  from: Spec[],
  to: Spec,
  onProgress?: (e: ProgressEvent) => void,
): Promise<ExportResult & { sources: { spec: string; summary: CacheSummary }[] }> {
  try {
    const res = await client.copy(
      from.map((s) => absolutizeLocal(s)),
      absolutizeLocal(to),
      { onProgress: onProgress && ((p) => onProgress(progressFromWire(p))) },
    );
    const { receivedBytes: _unused, ...stats } = res.stats;
    return { manifest: res.manifest, config: res.config, target: res.target, tag: res.tag, stats, warnings: res.warnings, sources: res.sources };
  } finally {
    client.close();
  }
}
