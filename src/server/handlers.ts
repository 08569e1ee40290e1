// The unary and server-streaming calls: Import, Inspect, FetchBlob, Copy, CopyStream.
// Each authenticates the caller, authorizes every spec it names (no store is
// touched until then), takes an import slot, runs the core operation, and
// maps any failure to a status in one place.
import type { Metadata, ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { CacheGraph } from '../cache/graph.js';
import { addToGraph, loadBytes, type LoadedCache } from '../cache/import.js';
import { copyCache, importChain, inspectCache, loadFirst, summarize } from '../cache/operations.js';
import { dropLostResults } from '../cache/lifecycle/verify.js';
import { openImport, readManifest, type ImportTarget } from '../cache/remote/index.js';
import { formatCacheSpec, type CacheSpec } from '../cache/spec.js';
import type { ProgressEvent } from '../cache/transfer.js';
import { asBkError, BkError, invalidArgument, isNotFound, notFound, resourceExhausted } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { verified } from '../store/content.js';
import { authenticate, type Caller } from './access.js';
import { drainedWithin } from './idle.js';
import type { Semaphore } from './semaphore.js';
import { cancellation, trackCall, type CallTracker, type ServerContext } from './context.js';
import type {
  WireCopyRequest,
  WireCopyResponse,
  WireCopyEvent,
  WireFetchBlobRequest,
  WireBlobChunk,
  WireImportRequest,
  WireImportResponse,
  WireInspectRequest,
  WireInspectResponse,
  WireSpec,
} from '../api/proto.js';
import { ProgressToWire } from '../api/progress.js';
import { checkDigest, descriptorFromWire, descriptorToWire, graphToWire, specLabel, statsToWire, summaryToWire } from '../api/wire.js';

type Call = { getPeer(): string; getDeadline(): Date | number; on(ev: 'cancelled', f: () => void): unknown; cancelled: boolean; metadata: Metadata };

/**
 * Runs a call: authenticate, then `authorize` (pure: specs and token only),
 * then `run` with an import slot held and a signal that fires when the call
 * is cancelled. Refused calls never wait for a slot or reach a store.
 */
async function withCall<P, T>(
  ctx: ServerContext,
  method: string,
  pool: Semaphore,
  call: Call,
  authorize: (caller: Caller, t: CallTracker) => P,
  run: (plan: P, signal: AbortSignal, t: CallTracker, caller: Caller) => Promise<T>,
): Promise<{ value?: T; err?: BkError; t: CallTracker }> {
  const t = trackCall(ctx, method, call.getPeer());
  const ac = new AbortController();
  call.on('cancelled', () => ac.abort(cancellation(call, method)));
  let release: (() => void) | undefined;
  try {
    const caller = authenticate(ctx, call.metadata, t.audit, t.redact);
    const plan = authorize(caller, t);
    // Per tenant too: one tenant cannot hold every slot of the pool (server/semaphore.ts).
    release = await pool.acquire(ac.signal, caller.identity?.tenant);
    const value = await run(plan, ac.signal, t, caller);
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

function unary<Req, Res, P>(
  ctx: ServerContext,
  method: string,
  authorize: (req: Req, caller: Caller, t: CallTracker) => P,
  run: (plan: P, req: Req, signal: AbortSignal, t: CallTracker, caller: Caller) => Promise<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    void withCall(
      ctx,
      method,
      ctx.importSlots,
      call,
      (caller, t) => authorize(call.request, caller, t),
      (plan, signal, t, caller) => run(plan, call.request, signal, t, caller),
    ).then(({ value, err, t }) => {
      if (err) callback(t.status(err));
      else callback(null, value!);
    });
  };
}

/**
 * The sources of an Import or Copy, each authorized as a chain (a tier spec
 * expands to several), within limits.maxSources counted before and after
 * expansion, so an oversize list is refused before any spec is parsed.
 */
function readSources(ctx: ServerContext, method: string, sources: WireSpec[] | null | undefined, caller: Caller): CacheSpec[][] {
  if (!sources?.length) throw invalidArgument(`${method} needs at least one source`, { reason: 'invalid-spec' });
  const max = ctx.cfg.limits.maxSources;
  const tooMany = () => resourceExhausted(`${method} names more than ${max} sources (limits.maxSources)`, { reason: 'too-many-sources' });
  if (sources.length > max) throw tooMany();
  const chains = sources.map((s, i) => caller.readChain(s, `sources[${i}]`));
  if (chains.reduce((n, c) => n + c.length, 0) > max) throw tooMany();
  return chains;
}

/** Tier specs expand to several; these are the request's sources, flattened, each with its request position. */
function flatten(chains: CacheSpec[][]): { specs: CacheSpec[]; origin: number[] } {
  const specs: CacheSpec[] = [];
  const origin: number[] = [];
  chains.forEach((c, i) => {
    for (const s of c) {
      specs.push(s);
      origin.push(i);
    }
  });
  return { specs, origin };
}

function summaryOf(loaded: LoadedCache) {
  return summaryToWire(summarize(loaded));
}

export function importHandler(ctx: ServerContext) {
  return unary<WireImportRequest, WireImportResponse, { specs: CacheSpec[]; origin: number[] }>(
    ctx,
    'Import',
    (req, caller, t) => {
      const flat = flatten(readSources(ctx, 'Import', req.sources, caller));
      t.fields.sources = flat.specs.map(specLabel);
      return flat;
    },
    async ({ specs, origin }, req, signal, t) => {
      const res = await importChain(specs, ctx.cfg.backend, { ignoreErrors: req.ignore_error, signal });
      let checked: Awaited<ReturnType<typeof dropLostResults>> | undefined;
      try {
        if (req.verify_blobs && res.hit) checked = await dropLostResults(res.hit.store, res.hit.loaded, res.graph, { signal, concurrency: ctx.cfg.backend.registry?.concurrency });
      } finally {
        await res.blobs.close();
      }
      const hit = res.hit;
      // hit_index and miss indexes are positions in the request, whatever a tier expanded to.
      const hitIndex = hit ? origin[hit.index]! : -1;
      t.fields.hit = hitIndex;
      if (hit) t.fields.hit_source = formatCacheSpec(hit.spec);
      const loaded = hit?.loaded;
      return {
        hit: !!hit,
        hit_index: hitIndex,
        manifest: loaded ? descriptorToWire(loaded.manifest) : null,
        kind: loaded?.kind ?? '',
        summary: loaded ? summaryOf(loaded) : null,
        graph: graphToWire(checked?.graph ?? res.graph),
        misses: res.misses.map((m) => ({ ...m, index: origin[m.index]!, spec: t.redact.text(m.spec), message: t.redact.text(m.message) })),
        warnings: (loaded?.warnings ?? []).map((w) => t.redact.text(w)),
        dropped: checked?.dropped ?? [],
      };
    },
  );
}

export function inspectHandler(ctx: ServerContext) {
  return unary<WireInspectRequest, WireInspectResponse, CacheSpec[]>(
    ctx,
    'Inspect',
    (req, caller, t) => {
      const chain = caller.readChain(req.source, 'the source');
      t.fields.source = chain.map(specLabel).join(' | ');
      return chain;
    },
    async (chain, req, signal, t) => {
      const { value } = await loadFirst(chain, (spec) => inspectCache(spec, ctx.cfg.backend, { signal }));
      const { summary, loaded } = value;
      let graph = null;
      if (req.include_graph) {
        const g = new CacheGraph();
        addToGraph(g, loaded);
        graph = graphToWire(g);
      }
      return {
        summary: summaryToWire(summary),
        warnings: loaded.warnings.map((w) => t.redact.text(w)),
        graph,
        manifest: descriptorToWire(loaded.manifest),
        config: loaded.config ? descriptorToWire(loaded.config) : null,
      };
    },
  );
}

/**
 * Copy: every source merged into one graph (a tier source is its first tier
 * that exists), exported to the target. Blobs are mounted only from a store
 * the caller may pull; every source is one already, and the check stands
 * guard should that ever change. CopyStream is the same call with progress
 * events streamed as it runs.
 */
type CopyPlan = { from: CacheSpec[][]; to: CacheSpec };

function authorizeCopy(ctx: ServerContext, req: WireCopyRequest, caller: Caller, t: CallTracker): CopyPlan {
  const from = readSources(ctx, 'Copy', req.sources, caller);
  const to = caller.writeTarget(req.target, 'the target').spec;
  Object.assign(t.fields, { sources: from.flat().map(specLabel), target: specLabel(to) });
  return { from, to };
}

async function runCopy(
  ctx: ServerContext,
  { from, to }: CopyPlan,
  signal: AbortSignal,
  t: CallTracker,
  caller: Caller,
  onProgress?: (e: ProgressEvent) => void,
): Promise<WireCopyResponse> {
  const release = await ctx.exportSlots.acquire(signal, caller.identity?.tenant);
  try {
    const res = await copyCache(from, to, ctx.cfg.backend, {
      signal,
      mayMountFrom: (s) => caller.mayPullStore(s),
      onTarget: (store) => caller.confirmWrite(store, to),
      onProgress,
    });
    ctx.metrics.addBytes('uploaded', res.stats.uploadedBytes);
    t.audit.bytes = res.stats.uploadedBytes;
    return {
      result: {
        manifest: res.manifest ? descriptorToWire(res.manifest) : null,
        config: res.config ? descriptorToWire(res.config) : null,
        target: t.redact.text(res.target),
        tag: res.tag,
        stats: statsToWire(res.stats),
        warnings: res.warnings.map((w) => t.redact.text(w)),
      },
      sources: res.sources.map((s) => ({ spec: t.redact.text(s.spec), summary: summaryToWire(s.summary) })),
    };
  } finally {
    release();
  }
}

export function copyHandler(ctx: ServerContext) {
  return unary<WireCopyRequest, WireCopyResponse, CopyPlan>(ctx, 'Copy', (req, caller, t) => authorizeCopy(ctx, req, caller, t), (plan, _req, signal, t, caller) =>
    runCopy(ctx, plan, signal, t, caller),
  );
}

export function copyStreamHandler(ctx: ServerContext) {
  return (call: ServerWritableStream<WireCopyRequest, WireCopyEvent>): void => {
    const toWire = new ProgressToWire();
    void withCall(
      ctx,
      'CopyStream',
      ctx.importSlots,
      call,
      (caller, t) => authorizeCopy(ctx, call.request, caller, t),
      (plan, signal, t, caller) =>
        runCopy(ctx, plan, signal, t, caller, (e) => {
          const p = toWire.convert(e);
          // Progress is advisory: a client that reads slowly loses byte counts, never the copy.
          if (p && !call.cancelled && (call.writableLength < 1 << 20 || e.type !== 'blob' || e.status !== 'uploading')) call.write({ progress: p });
        }),
    ).then(({ value, err, t }) => {
      if (call.cancelled) return;
      if (err) call.emit('error', t.status(err));
      else {
        call.write({ done: value! });
        call.end();
      }
    });
  };
}

// ---------------------------------------------------------------- FetchBlob

/**
 * The one answer for a blob the caller cannot have: absent, or present but
 * not part of any cache it may pull. Same code, message and reason either
 * way, so FetchBlob cannot be used to probe for other tenants' blobs.
 */
function blobNotFound(): BkError {
  return notFound('blob not found in the source cache', { reason: 'unknown-blob' });
}

/** What the request names: a full descriptor, or a digest to look up among the cache's own content. */
function requested(req: WireFetchBlobRequest): { desc?: Descriptor; digest: string } {
  const w = req.descriptor;
  if (w && w.digest && (w.size > 0 || w.media_type)) return { desc: descriptorFromWire(w), digest: w.digest };
  const digest = req.digest || w?.digest;
  if (!digest) throw invalidArgument('FetchBlob needs a descriptor or a digest', { reason: 'invalid-digest' });
  checkDigest(digest);
  return { digest };
}

/**
 * The blob's descriptor when `source` holds it as part of what the caller
 * may pull, else undefined. Membership comes from the store itself, so any
 * number of daemons give the same answer: a digest alone must be the cache's
 * manifest, its config or one of its layers; a full descriptor must exist in
 * the source's repository (on a registry, a HEAD in that repository, which
 * answers only for blobs linked to it) or layout.
 */
async function member(r: { desc?: Descriptor; digest: string }, source: ImportTarget, signal: AbortSignal): Promise<Descriptor | undefined> {
  try {
    if (r.desc) return (await source.store.exists(r.desc, { signal })) ? r.desc : undefined;
    const { desc: manifest, bytes } = await readManifest(source, signal);
    if (manifest.digest === r.digest) return manifest;
    const loaded = await loadBytes(source.store, manifest, bytes, { signal });
    if (loaded.config?.digest === r.digest) return loaded.config;
    for (const part of loaded.parts) {
      const d = part.provider.get(r.digest);
      if (d) return d;
    }
    return undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function fetchBlobHandler(ctx: ServerContext) {
  return (call: ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>): void => {
    void withCall(
      ctx,
      'FetchBlob',
      ctx.fetchSlots,
      call,
      (caller, t) => {
        const chain = caller.readChain(call.request.source, 'the source');
        t.fields.source = chain.map(specLabel).join(' | ');
        return { chain, want: requested(call.request) };
      },
      async ({ chain, want }, signal, t) => {
        const req = call.request;
        // The first source of the chain (one, unless a tier spec) that holds the blob serves it.
        let found: { source: ImportTarget; desc: Descriptor } | undefined;
        for (const spec of chain) {
          const source = await openImport(spec, ctx.cfg.backend);
          const desc = await member(want, source, signal).catch(async (err) => {
            await source.store.close?.();
            throw err;
          });
          if (desc) {
            found = { source, desc };
            break;
          }
          await source.store.close?.();
        }
        if (!found) throw blobNotFound();
        const { source, desc } = found;
        try {
          t.fields.digest = desc.digest;
          const offset = Number(req.offset ?? 0);
          if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
            throw invalidArgument(`offset ${req.offset} is outside blob ${desc.digest} of ${desc.size} bytes`, { reason: 'bad-offset' });
          }
          // From offset 0 whatever the request's offset: only the whole blob can be checked against
          // its digest, so the prefix is read (and hashed) too, and bytes before `offset` are dropped.
          const fetched = await source.store.fetch(desc, { signal }).catch((err) => {
            // Deleted between the check and the read: the same answer as never there.
            throw isNotFound(err) ? blobNotFound() : err;
          });
          const stream = verified(fetched, desc);
          t.audit.bytes = await send(call, stream, desc.digest, offset, ctx.cfg.limits.blobChunkBytes, signal, ctx);
        } finally {
          await source.store.close?.();
        }
      },
    ).then(({ err, t }) => {
      if (call.cancelled) return;
      if (err) call.emit('error', t.status(err));
      else call.end();
    });
  };
}

/**
 * Streams the verified whole blob `stream` from `offset` on, as BlobChunks of
 * at most `max` bytes, waiting for the client to drain; returns the bytes
 * sent. The last piece is held back until the stream ended, which is when
 * the digest was checked: a blob that is wrong never reaches the client
 * whole, and the call ends with the stream's DATA_LOSS.
 */
async function send(
  call: ServerWritableStream<WireFetchBlobRequest, WireBlobChunk>,
  stream: NodeJS.ReadableStream & { destroy(): void },
  digest: string,
  offset: number,
  max: number,
  signal: AbortSignal,
  ctx: ServerContext,
): Promise<number> {
  let skip = offset;
  let pos = offset;
  let held: Buffer | undefined;
  const write = async (data: Buffer) => {
    if (signal.aborted) throw signal.reason;
    const ok = call.write({ digest, offset: pos, data });
    pos += data.length;
    ctx.metrics.addBytes('sent', data.length);
    // Wait for the client to take what was sent: the whole blob is never queued in memory;
    // a client that takes nothing for the idle timeout loses the call and its slot.
    if (!ok) await drainedWithin(call, signal, ctx.cfg.limits.idleTimeoutSeconds * 1000, 'FetchBlob: the client read nothing');
  };
  try {
    for await (const chunk of stream) {
      let buf = chunk as Buffer;
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        skip -= n;
        buf = buf.subarray(n);
      }
      for (let i = 0; i < buf.length; i += max) {
        if (held) await write(held);
        held = buf.subarray(i, i + max);
      }
    }
    if (held) await write(held);
  } finally {
    stream.destroy();
  }
  return pos - offset;
}
