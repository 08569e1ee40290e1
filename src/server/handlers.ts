// The unary and server-streaming calls: Import, Inspect, FetchBlob, Copy.
// Each resolves its specs against the default store, takes an import slot,
// runs the core operation, and maps any failure to a status in one place.
import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { CacheGraph } from '../cache/graph.js';
import { addToGraph, loadCache } from '../cache/import.js';
import { copyCache, importChain, inspectCache } from '../cache/operations.js';
import { openImport } from '../cache/remote/index.js';
import { asBkError, BkError, invalidArgument, notFound } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { verified } from '../store/content.js';
import { cancellation, resolveSpec, trackCall, type CallTracker, type ServerContext } from './context.js';
import type {
  WireCopyRequest,
  WireCopyResponse,
  WireFetchBlobRequest,
  WireBlobChunk,
  WireImportRequest,
  WireImportResponse,
  WireInspectRequest,
  WireInspectResponse,
} from './proto.js';
import { toStatus } from './status.js';
import { descriptorFromWire, descriptorToWire, graphToWire, specFromWire, specLabel, statsToWire, summaryToWire } from './wire.js';

type Call = { getPeer(): string; getDeadline(): Date | number; on(ev: 'cancelled', f: () => void): unknown; cancelled: boolean };

/** Runs `fn` with a signal that fires when the call is cancelled, an import slot held, and accounting. */
async function withCall<T>(ctx: ServerContext, method: string, call: Call, fn: (signal: AbortSignal, t: CallTracker) => Promise<T>): Promise<{ value?: T; err?: BkError; t: CallTracker }> {
  const t = trackCall(ctx, method, call.getPeer());
  const ac = new AbortController();
  call.on('cancelled', () => ac.abort(cancellation(call, method)));
  let release: (() => void) | undefined;
  try {
    release = await ctx.importSlots.acquire(ac.signal);
    const value = await fn(ac.signal, t);
    t.end();
    return { value, t };
  } catch (err) {
    const e = asBkError(err);
    t.end(call.cancelled ? cancellation(call, method) : e);
    return { err: e, t };
  } finally {
    release?.();
  }
}

function unary<Req, Res>(ctx: ServerContext, method: string, fn: (req: Req, signal: AbortSignal, t: CallTracker) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    void withCall(ctx, method, call, (signal, t) => fn(call.request, signal, t)).then(({ value, err }) => {
      if (err) callback(toStatus(err));
      else callback(null, value!);
    });
  };
}

export function importHandler(ctx: ServerContext) {
  return unary<WireImportRequest, WireImportResponse>(ctx, 'Import', async (req, _signal, t) => {
    if (!req.sources?.length) throw invalidArgument('Import needs at least one source', { reason: 'invalid-spec' });
    const specs = req.sources.map((s) => resolveSpec(ctx.cfg, specFromWire(s), 'import'));
    t.fields.sources = specs.map(specLabel);
    const res = await importChain(specs, ctx.cfg.backend, { ignoreErrors: req.ignore_error });
    const hit = res.hit;
    t.fields.hit = hit ? hit.index : -1;
    const loaded = hit?.loaded;
    return {
      hit: !!hit,
      hit_index: hit ? hit.index : -1,
      manifest: loaded ? descriptorToWire(loaded.manifest) : null,
      kind: loaded?.kind ?? '',
      summary: loaded
        ? summaryToWire({ kind: loaded.kind, mediaType: loaded.mediaType, manifest: loaded.manifest.digest, config: loaded.config?.digest ?? null, layers: loaded.layerCount, records: loaded.recordCount })
        : null,
      graph: graphToWire(res.graph),
      misses: res.misses,
      warnings: loaded?.warnings ?? [],
    };
  });
}

export function inspectHandler(ctx: ServerContext) {
  return unary<WireInspectRequest, WireInspectResponse>(ctx, 'Inspect', async (req, _signal, t) => {
    const spec = resolveSpec(ctx.cfg, specFromWire(req.source), 'import');
    t.fields.source = specLabel(spec);
    const { summary, loaded } = await inspectCache(spec, ctx.cfg.backend);
    let graph = null;
    if (req.include_graph) {
      const g = new CacheGraph();
      addToGraph(g, loaded);
      graph = graphToWire(g);
    }
    return {
      summary: summaryToWire(summary),
      warnings: loaded.warnings,
      graph,
      manifest: descriptorToWire(loaded.manifest),
      config: loaded.config ? descriptorToWire(loaded.config) : null,
    };
  });
}

export function copyHandler(ctx: ServerContext) {
  return unary<WireCopyRequest, WireCopyResponse>(ctx, 'Copy', async (req, signal, t) => {
    if (!req.sources?.length) throw invalidArgument('Copy needs at least one source', { reason: 'invalid-spec' });
    const from = req.sources.map((s) => resolveSpec(ctx.cfg, specFromWire(s), 'import'));
    const to = resolveSpec(ctx.cfg, specFromWire(req.target), 'export');
    Object.assign(t.fields, { sources: from.map(specLabel), target: specLabel(to) });
    const release = await ctx.exportSlots.acquire(signal);
    try {
      const res = await copyCache(from, to, ctx.cfg.backend, { signal });
      ctx.metrics.addBytes('uploaded', res.stats.uploadedBytes);
      return {
        result: {
          manifest: res.manifest ? descriptorToWire(res.manifest) : null,
          config: res.config ? descriptorToWire(res.config) : null,
          target: res.target,
          tag: res.tag,
          stats: statsToWire(res.stats),
          warnings: res.warnings,
        },
        sources: res.sources.map((s) => ({ spec: s.spec, summary: summaryToWire(s.summary) })),
      };
    } finally {
      release();
    }
  });
}

/** A blob named by digest only is looked up among the cache's own content, never guessed. */
async function describe(req: WireFetchBlobRequest, store: Parameters<typeof loadCache>[0], resolveManifest: () => Promise<Descriptor>): Promise<Descriptor> {
  const w = req.descriptor;
  if (w && w.digest && (w.size > 0 || w.media_type)) return descriptorFromWire(w);
  const digest = req.digest || w?.digest;
  if (!digest) throw invalidArgument('FetchBlob needs a descriptor or a digest', { reason: 'invalid-digest' });
  descriptorFromWire({ media_type: '', digest, size: 0, annotations: {}, urls: [] }, 'digest');
  const manifest = await resolveManifest();
  if (manifest.digest === digest) return manifest;
  const loaded = await loadCache(store, manifest);
  if (loaded.config?.digest === digest) return loaded.config;
  for (const part of loaded.parts) {
    const d = part.provider.get(digest);
    if (d) return d;
  }
  throw notFound(`blob ${digest} is not part of the cache`, { reason: 'unknown-blob' });
}

export function fetchBlobHandler(ctx: ServerContext) {
  return (call: ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>): void => {
    void withCall(ctx, 'FetchBlob', call, async (signal, t) => {
      const req = call.request;
      const spec = resolveSpec(ctx.cfg, specFromWire(req.source), 'import');
      t.fields.source = specLabel(spec);
      const target = await openImport(spec, ctx.cfg.backend);
      const desc = await describe(req, target.store, () => target.resolve());
      t.fields.digest = desc.digest;
      const offset = Number(req.offset ?? 0);
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
        throw invalidArgument(`offset ${req.offset} is outside blob ${desc.digest} of ${desc.size} bytes`, { reason: 'bad-offset' });
      }
      const stream = verified(await target.store.fetch(desc, { offset, signal }), desc, offset);
      const max = ctx.cfg.limits.blobChunkBytes;
      let pos = offset;
      try {
        for await (const chunk of stream) {
          const buf = chunk as Buffer;
          for (let i = 0; i < buf.length; i += max) {
            if (signal.aborted) throw signal.reason;
            const data = buf.subarray(i, i + max);
            const ok = call.write({ digest: desc.digest, offset: pos, data });
            pos += data.length;
            ctx.metrics.addBytes('sent', data.length);
            // Wait for the client to take what was sent: the whole blob is never queued in memory.
            if (!ok) await new Promise<void>((resolve) => {
              const go = () => {
                call.off('drain', go);
                signal.removeEventListener('abort', go);
                resolve();
              };
              call.on('drain', go);
              signal.addEventListener('abort', go);
            });
          }
        }
      } finally {
        stream.destroy();
      }
      t.fields.bytes = pos - offset;
    }).then(({ err }) => {
      if (call.cancelled) return;
      if (err) call.emit('error', toStatus(err));
      else call.end();
    });
  };
}
