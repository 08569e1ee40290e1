// bkcache client library: what a TypeScript build solver imports to talk to
// a bkcache daemon (`bkcache serve`).
//
//   import { connect, CacheGraph } from 'bkcache';
//   const client = connect('unix:///run/bkcache/bkcache.sock');   // a daemon with auth on: { token } or $BKCACHE_TOKEN
//   const g = new CacheGraph();
//   const base = g.add('sha256:…');               // a cache key
//   const step = g.add('sha256:…');
//   step.linkFrom(base, 0, '');                    // input 0 of step comes from base
//   step.addResult(new Date(), [layerDescriptor]); // its layers, base first
//   const res = await client.export('type=local,dest=/cache', g, { open: (d) => fs.createReadStream(blobPath(d)) });
//   const { graph } = await client.import(['type=local,src=/cache']);
//   client.close();
//
// Errors are BkError with the daemon's code (NOT_FOUND, DATA_LOSS, …).
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { CacheGraph as CacheGraphT } from '../cache/graph.js';
import type { CacheSummary } from '../cache/operations.js';
import type { CacheSpec } from '../cache/spec.js';
import type { TransferStats } from '../cache/transfer.js';
import { BkError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { defaultClientAddress, grpcTarget, parseAddress } from '../api/address.js';
import { healthProto, type ServingStatus } from '../api/health-proto.js';
import { cacheProto, type WireExportRequest, type WireExportResponse, type WireBlobChunk, type WireCopyResponse, type WireCopyEvent, type WireImportResponse, type WireInspectResponse } from '../api/proto.js';
import { fromServiceError } from '../api/status.js';
import { descriptorFromWire, descriptorToWire, graphFromWire, specToWire, statsFromWire, summaryFromWire } from '../api/wire.js';
import { FetchedChunks, fromDaemon, statedSize } from './answers.js';
import { describeDaemonError } from './daemon-errors.js';
import { GrpcCall } from './grpc-call.js';
import { H2Channel } from './h2-channel.js';
import { runExport, type BlobProvider, type ExportOptions, type ExportOutcome, type ExportProgress } from './export.js';

export { CacheGraph } from '../cache/graph.js';
export { BkError } from '../errors.js';
export type { CacheSpec, CacheSummary, Descriptor, TransferStats, BlobProvider, ExportOptions, ExportOutcome, ExportProgress, ServingStatus };

export interface ConnectOptions {
  /** TLS for tcp:// addresses. Files are paths; omit everything to use the system CAs. */
  tls?: { ca?: string; cert?: string; key?: string; serverName?: string };
  /** Largest message accepted from the daemon (import graphs can be large). Default 256 MiB. */
  maxReceiveBytes?: number;
  /**
   * Bearer token for a daemon with auth on (`bkcache token` mints them), sent
   * as "authorization: Bearer …" on every call; a function is asked anew for
   * each call, so a solver can refresh tokens. Default: $BKCACHE_TOKEN.
   */
  token?: string | (() => string);
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Deadline in milliseconds from now. */
  timeoutMs?: number;
}

export interface ImportOutcome {
  /** The source that was imported; undefined when none existed. */
  hit?: { index: number; manifest: Descriptor; kind: CacheSummary['kind']; summary: CacheSummary };
  graph: CacheGraphT;
  misses: { index: number; spec: string; code: string; message: string }[];
  warnings: string[];
  /** With `verifyBlobs`: records whose results were dropped because a blob of their chain is missing. */
  dropped: string[];
}

export interface InspectOutcome {
  summary: CacheSummary;
  warnings: string[];
  /** Present when asked for with includeGraph. */
  graph?: CacheGraphT;
  manifest: Descriptor;
  /** Undefined for inline caches. */
  config?: Descriptor;
}

export interface CopyOutcome extends Omit<ExportOutcome, 'requested' | 'sentBytes'> {
  sources: { spec: string; summary: CacheSummary }[];
}

type Spec = string | CacheSpec;
type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class CacheClient {
  private readonly client: AnyClient;
  private readonly healthClient: AnyClient;
  private readonly token?: string | (() => string);
  /** Export's own connection (grpc-call.ts says why). */
  private readonly exportChannel: H2Channel;
  private readonly maxReceiveBytes: number;

  /** `addr`: unix:///path.sock, tcp://host:port or host:port; default $BKCACHE_ADDR or the default socket. */
  constructor(
    readonly address: string = defaultClientAddress(),
    opts: ConnectOptions = {},
  ) {
    const a = parseAddress(address);
    this.token = opts.token ?? (process.env.BKCACHE_TOKEN || undefined);
    const tls = a.kind === 'tcp' && opts.tls ? opts.tls : undefined;
    const files = tls && {
      ca: tls.ca ? readFileSync(tls.ca) : undefined,
      key: tls.key ? readFileSync(tls.key) : undefined,
      cert: tls.cert ? readFileSync(tls.cert) : undefined,
    };
    const creds = files ? grpc.credentials.createSsl(files.ca ?? null, files.key ?? null, files.cert ?? null) : grpc.credentials.createInsecure();
    this.maxReceiveBytes = opts.maxReceiveBytes ?? 256 << 20;
    const options: grpc.ChannelOptions = { 'grpc.max_receive_message_length': this.maxReceiveBytes };
    if (tls?.serverName) options['grpc.ssl_target_name_override'] = tls.serverName;
    this.client = new (cacheProto().ctor)(grpcTarget(a), creds, options) as unknown as AnyClient;
    this.exportChannel = new H2Channel(a, files && { ...files, serverName: tls?.serverName });
    // The health client shares the channel of the cache client.
    this.healthClient = new (healthProto().ctor)(grpcTarget(a), creds, { ...options, channelOverride: this.client.getChannel() }) as unknown as AnyClient;
  }

  /** The bearer token for this call, if any; a function is asked anew each time. */
  private authorization(): Record<string, string> {
    const t = typeof this.token === 'function' ? this.token() : this.token;
    // A header value is printable ASCII (RFC 9110 field-value, as gRPC metadata restricts it).
    if (t && !/^[\x20-\x7e]+$/.test(t)) throw new BkError('INVALID_ARGUMENT', 'the token has characters an HTTP header cannot carry');
    return t ? { authorization: `Bearer ${t}` } : {};
  }

  /** Per-call metadata: grpc-js refuses call credentials on insecure channels (unix sockets), so the token goes here. */
  private metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.authorization())) m.set(k, v);
    return m;
  }

  /** Every error a call returns: typed, and in words when the daemon could not be reached. */
  private error(err: unknown): BkError {
    return describeDaemonError(fromServiceError(err), this.address);
  }

  private callOptions(o: CallOptions = {}): grpc.CallOptions {
    return o.timeoutMs !== undefined ? { deadline: Date.now() + o.timeoutMs } : {};
  }

  private unary<Res>(client: AnyClient, method: string, req: unknown, o: CallOptions = {}): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (o.signal?.aborted) return reject(new BkError('CANCELLED', `${method} cancelled`));
      const call = client[method]!(req, this.metadata(), this.callOptions(o), (err: unknown, res: Res) => {
        o.signal?.removeEventListener('abort', onAbort);
        if (err) reject(this.error(err));
        else resolve(res);
      }) as grpc.ClientUnaryCall;
      const onAbort = () => call.cancel();
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Exports `graph` to `target` (a spec such as "type=local,dest=/dir,mode=max").
   * The daemon asks only for layer blobs the target lacks; `blobs` provides them.
   */
  export(target: Spec, graph: CacheGraphT, blobs: BlobProvider, opts: ExportOptions = {}): Promise<ExportOutcome> {
    // Aborted already: no connection or stream is opened for nothing.
    if (opts.signal?.aborted) return Promise.reject(new BkError('CANCELLED', 'export cancelled'));
    const method = cacheProto().service.Export!;
    let call: GrpcCall<WireExportRequest, WireExportResponse>;
    try {
      call = new GrpcCall<WireExportRequest, WireExportResponse>(this.exportChannel, {
        path: method.path,
        serialize: method.requestSerialize,
        deserialize: method.responseDeserialize,
        metadata: this.authorization(),
        deadline: opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : undefined,
        maxReceiveBytes: this.maxReceiveBytes,
      });
    } catch (err) {
      return Promise.reject(err);
    }
    return runExport(call, target, graph, blobs, opts).catch((err: unknown) => Promise.reject(this.error(err)));
  }

  /** Imports the first of `sources` that exists (NOT_FOUND moves on; other errors fail unless ignoreError). */
  /** `verifyBlobs`: the daemon checks the hit cache's blobs and drops results whose chains lost one. */
  async import(sources: Spec[], opts: CallOptions & { ignoreError?: boolean; verifyBlobs?: boolean } = {}): Promise<ImportOutcome> {
    const res = await this.unary<WireImportResponse>(
      this.client,
      'Import',
      { sources: sources.map(specToWire), ignore_error: !!opts.ignoreError, verify_blobs: !!opts.verifyBlobs },
      opts,
    );
    return fromDaemon('Import answer', () => ({
      hit: res.hit
        ? { index: res.hit_index, manifest: descriptorFromWire(res.manifest, 'manifest'), kind: res.kind as CacheSummary['kind'], summary: summaryFromWire(res.summary) }
        : undefined,
      graph: graphFromWire(res.graph),
      misses: res.misses ?? [],
      warnings: res.warnings ?? [],
      dropped: res.dropped ?? [],
    }));
  }

  /** The summary `bkcache inspect --format json` prints, plus warnings (and the graph on request). */
  async inspect(spec: Spec, opts: CallOptions & { includeGraph?: boolean } = {}): Promise<InspectOutcome> {
    const res = await this.unary<WireInspectResponse>(this.client, 'Inspect', { source: specToWire(spec), include_graph: !!opts.includeGraph }, opts);
    return fromDaemon('Inspect answer', () => ({
      summary: summaryFromWire(res.summary),
      warnings: res.warnings ?? [],
      graph: opts.includeGraph ? graphFromWire(res.graph) : undefined,
      manifest: descriptorFromWire(res.manifest, 'manifest'),
      config: res.config ? descriptorFromWire(res.config, 'config') : undefined,
    }));
  }

  /**
   * Imports every source into one graph and exports it, inside the daemon.
   * With onProgress, the call is CopyStream and progress events arrive as the
   * daemon works (a daemon without CopyStream gets a plain Copy).
   */
  async copy(sources: Spec[], target: Spec, opts: CallOptions & { onProgress?: (p: ExportProgress) => void } = {}): Promise<CopyOutcome> {
    const req = { sources: sources.map(specToWire), target: specToWire(target) };
    let res: WireCopyResponse;
    if (opts.onProgress) {
      try {
        res = await this.copyStream(req, opts.onProgress, opts);
      } catch (err) {
        const cause = (err as BkError).cause as { code?: number } | undefined;
        if (cause?.code !== grpc.status.UNIMPLEMENTED) throw err;
        res = await this.unary<WireCopyResponse>(this.client, 'Copy', req, opts);
      }
    } else {
      res = await this.unary<WireCopyResponse>(this.client, 'Copy', req, opts);
    }
    const r = res.result;
    return fromDaemon('Copy answer', () => ({
      manifest: r?.manifest ? descriptorFromWire(r.manifest, 'manifest') : undefined,
      config: r?.config ? descriptorFromWire(r.config, 'config') : undefined,
      target: r?.target ?? '',
      tag: r?.tag ?? '',
      stats: statsFromWire(r?.stats),
      warnings: r?.warnings ?? [],
      sources: (res.sources ?? []).map((s) => ({ spec: s.spec, summary: summaryFromWire(s.summary) })),
    }));
  }

  private async copyStream(req: unknown, onProgress: (p: ExportProgress) => void, o: CallOptions): Promise<WireCopyResponse> {
    if (o.signal?.aborted) throw new BkError('CANCELLED', 'CopyStream cancelled');
    const call = (this.client.CopyStream as (r: unknown, m: grpc.Metadata, opt: grpc.CallOptions) => grpc.ClientReadableStream<WireCopyEvent>)(
      req,
      this.metadata(),
      this.callOptions(o),
    );
    const onAbort = () => call.cancel();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let done: WireCopyResponse | undefined;
    try {
      for await (const m of call as AsyncIterable<WireCopyEvent>) {
        if (m.progress) onProgress(m.progress as ExportProgress);
        if (m.done) done = m.done;
      }
    } catch (err) {
      throw this.error(err);
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
    if (!done) throw new BkError('INTERNAL', 'the daemon ended CopyStream without a result');
    return done;
  }

  /**
   * Streams one blob of the cache `source`: a full descriptor is read
   * directly; a bare digest must be the cache's manifest, config or a layer.
   * The bytes are verified by the daemon against the digest (DATA_LOSS otherwise).
   */
  fetchBlob(source: Spec, blob: string | Descriptor, opts: CallOptions & { offset?: number } = {}): Readable {
    const req = {
      source: specToWire(source),
      descriptor: typeof blob === 'string' ? null : descriptorToWire(blob),
      digest: typeof blob === 'string' ? blob : blob.digest,
      offset: opts.offset ?? 0,
    };
    const call = (this.client.FetchBlob as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<WireBlobChunk>)(
      req,
      this.metadata(),
      this.callOptions(opts),
    );
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const self = this;
    const out = Readable.from(
      (async function* () {
        try {
          const check = new FetchedChunks(req.digest, req.offset, statedSize(blob));
          // Each chunk is given out once the next arrives, and the last once the call ended well and the
          // blob checked out: a blob whose bytes do not add up never arrives whole.
          let held: Buffer | undefined;
          for await (const m of call) {
            const data = check.take(m as WireBlobChunk);
            if (held?.length) yield held;
            held = data;
          }
          check.end();
          if (held?.length) yield held;
        } catch (err) {
          throw self.error(err);
        } finally {
          opts.signal?.removeEventListener('abort', onAbort);
        }
      })(),
      { objectMode: false },
    );
    // Destroying the reader early cancels the call rather than draining it.
    out.once('close', () => call.cancel());
    return out;
  }

  /** Reads a whole blob into memory (small blobs, tests). */
  async readBlob(source: Spec, blob: string | Descriptor, opts: CallOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.fetchBlob(source, blob, opts)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** grpc.health.v1 Check; service "" is the daemon as a whole. */
  async health(service = '', opts: CallOptions = {}): Promise<ServingStatus> {
    const res = await this.unary<{ status: ServingStatus }>(this.healthClient, 'Check', { service }, opts);
    return res.status;
  }

  /** Resolves once the channel is connected, or rejects after `timeoutMs`. */
  waitForReady(timeoutMs = 5_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new BkError('UNAVAILABLE', `no daemon answered at ${this.address} within ${timeoutMs} ms (is \`bkcache serve\` running there?)`, { cause: err })) : resolve(),
      ),
    );
  }

  close(): void {
    this.exportChannel.close();
    this.healthClient.close();
    this.client.close();
  }
}

/** Connects to a daemon (lazily: the first call dials). */
export function connect(addr?: string, opts: ConnectOptions = {}): CacheClient {
  return new CacheClient(addr ?? defaultClientAddress(), opts);
}
