// The Export conversation (see ExportRequest in cache.proto): start, graph
// parts, graph_done; the daemon answers need_blobs; the client streams
// exactly those blobs; pushCache stores blobs, config, manifest and tag in
// that order. One message is handled at a time with the call paused, which
// is both the ordering guarantee and the backpressure on blob data.
// The caller is authenticated when the call opens and the target authorized
// at start, before any store is opened; content_store_dir is authorized at
// graph_done. need_blobs consults only the target and repositories the caller
// may pull, so it never tells whether a blob exists anywhere else.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { buildCacheManifest, type BuiltCache } from '../cache/export.js';
import { openExport, openImport, type ExportTarget } from '../cache/remote/index.js';
import type { CacheSpec } from '../cache/spec.js';
import { mountable, pushCache, type BlobSource, type ProgressEvent } from '../cache/transfer.js';
import { asBkError, BkError, invalidArgument } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { ContentStore } from '../store/types.js';
import { authenticate, type Caller } from './access.js';
import { ClientBlobs, inContentStore } from './client-blobs.js';
import { idleError } from './idle.js';
import { cancellation, trackCall, type CallTracker, type ServerContext } from './context.js';
import type { WireExportRequest, WireExportResponse } from '../api/proto.js';
import { ProgressToWire } from '../api/progress.js';
import { descriptorToWire, GraphAssembler, specLabel, statsToWire } from '../api/wire.js';

type Call = ServerDuplexStream<WireExportRequest, WireExportResponse>;

/**
 * Reports needed blobs as absent, so pushCache asks the client for exactly
 * what need_blobs listed (a blob another export stored meanwhile is then
 * skipped by push itself, which drops the stream). A Proxy, so every other
 * member of the store passes through whatever the interface grows.
 */
function promisedStore(store: ContentStore, needed: Set<string>): ContentStore {
  return new Proxy(store, {
    get(t, prop) {
      if (prop === 'exists') return (d: Descriptor, o?: { signal?: AbortSignal }) => (needed.has(d.digest) ? Promise.resolve(false) : t.exists(d, o));
      const v = Reflect.get(t, prop, t) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

/**
 * A message that moves the export on: a step of the conversation, graph
 * entries or blob bytes. Empty graph parts and empty chunks are not, so a
 * client sending only those still reaches the idle timeout.
 */
function madeProgress(m: WireExportRequest): boolean {
  if (m.msg === 'graph') return !!(m.graph?.records?.length || m.graph?.links?.length || m.graph?.results?.length);
  if (m.msg === 'blob_chunk') return (m.blob_chunk?.data?.length ?? 0) > 0;
  return m.msg === 'start' || m.msg === 'graph_done' || m.msg === 'blob_done';
}

class ExportSession {
  private state: 'start' | 'graph' | 'blobs' | 'closed' = 'start';
  private readonly ac = new AbortController();
  private readonly tracker: CallTracker;
  private assembler: GraphAssembler;
  private target?: ExportTarget;
  private blobs?: ClientBlobs;
  private release?: () => void;
  private pushing?: Promise<unknown>;
  private readonly toWire = new ProgressToWire();
  private caller?: Caller;
  private idleTimer?: NodeJS.Timeout;
  /** When the client last sent something that moved the export on (see madeProgress). */
  private lastProgress = Date.now();
  /** Other tiers of a tier target that the caller may pull: blobs found there are mounted, not asked for. */
  private mountFrom: CacheSpec[] = [];
  /** Stores opened for mounting, by digest they hold; closed with the session. */
  private readonly mounts = new Map<string, ContentStore>();
  private readonly mountStores: ContentStore[] = [];

  constructor(
    private readonly call: Call,
    private readonly ctx: ServerContext,
  ) {
    this.tracker = trackCall(ctx, 'Export', call.getPeer());
    this.assembler = new GraphAssembler(ctx.cfg.limits);
    call.on('data', (m: WireExportRequest) => {
      call.pause();
      this.busy();
      this.handle(m).then(
        () => {
          if (this.state === 'closed') return;
          // Counted once handled: the daemon's own work on a message is never idle time.
          if (madeProgress(m)) this.lastProgress = Date.now();
          call.resume();
          this.waitForClient();
        },
        (err) => this.fail(err),
      );
    });
    call.on('end', () => this.clientEnded());
    // Client gone, deadline passed, or the daemon forced shutdown: grpc-js has
    // already answered the call; what is left is to stop work and write no manifest.
    call.on('cancelled', () => this.stop(cancellation(call, 'export')));
    call.on('error', () => undefined);
    try {
      this.caller = authenticate(ctx, call.metadata, this.tracker.audit, this.tracker.redact);
    } catch (err) {
      this.fail(err);
    }
    this.waitForClient();
  }

  /**
   * The daemon now waits for the client (its next message, before graph_done
   * or for blobs still to come): the idle timer runs until a message
   * arrives. Not while a message is handled, nor once every blob is in and
   * the push is the daemon's own work.
   */
  private waitForClient(): void {
    this.busy();
    if (this.state === 'closed' || (this.state === 'blobs' && this.blobs?.allReceived)) return;
    const ms = this.ctx.cfg.limits.idleTimeoutSeconds * 1000;
    const waitingFor = this.state === 'start' ? 'start' : this.state === 'graph' ? 'the graph' : 'blobs';
    // From the last message that moved the export on: empty ones do not keep a slot.
    const left = Math.max(0, ms - (Date.now() - this.lastProgress));
    this.idleTimer = setTimeout(() => this.fail(idleError(`export: the client sent nothing while the daemon waited for ${waitingFor}`, ms)), left);
  }

  private busy(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private async handle(m: WireExportRequest): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'start') return this.onStart(m);
    if (this.state === 'graph') {
      if (m.msg === 'graph' && m.graph) return this.assembler.add(m.graph);
      if (m.msg === 'graph_done') return this.onGraphDone(m.graph_done?.content_store_dir ?? '');
      throw invalidArgument(`unexpected ${m.msg ?? 'empty message'} before graph_done`, { reason: 'protocol' });
    }
    if (m.msg === 'blob_chunk' && m.blob_chunk) return this.blobs!.chunk(m.blob_chunk);
    if (m.msg === 'blob_done' && m.blob_done) return this.blobs!.blobDone(m.blob_done.digest);
    throw invalidArgument(`unexpected ${m.msg ?? 'empty message'} after graph_done`, { reason: 'protocol' });
  }

  private async onStart(m: WireExportRequest): Promise<void> {
    if (m.msg !== 'start' || !m.start) throw invalidArgument('the first Export message must be start', { reason: 'protocol' });
    // Authorized before the slot and before any store: a refused export costs nothing and reveals nothing.
    const { spec, mountFrom } = this.caller!.writeTarget(m.start.target, 'the export target');
    this.mountFrom = mountFrom;
    this.tracker.fields.target = specLabel(spec);
    // The slot is taken before anything is opened, so a queue of exports holds no resources.
    const release = await this.ctx.exportSlots.acquire(this.ac.signal, this.caller!.identity?.tenant);
    if (this.state === 'closed') return release();
    this.release = release;
    const target = await openExport(spec, this.ctx.cfg.backend);
    try {
      // Cancelled while the store opened: cleanup() has run without it, and the session stays closed.
      if (this.ac.signal.aborted) throw this.ac.signal.reason;
      this.caller!.confirmWrite(target.store, spec);
    } catch (err) {
      await target.store.close?.();
      throw err;
    }
    this.target = target;
    this.state = 'graph';
  }

  private async onGraphDone(given: string): Promise<void> {
    const dir = given ? this.caller!.contentDir(given) : '';
    const graph = this.assembler.build();
    this.assembler = new GraphAssembler(this.ctx.cfg.limits); // let the wire records go
    const { flat, descriptors } = graph.marshal();
    this.tracker.fields.records = flat.records;
    const target = this.target!;
    if (flat.layers === 0) {
      this.send({ msg: 'need_blobs', need_blobs: { digests: [] } });
      return this.finish({ target: target.name, tag: target.tag, warnings: ['no cache record has layers; nothing exported'] });
    }
    const built = buildCacheManifest(flat, descriptors, target.shape);
    const needed: Descriptor[] = [];
    const fromDir = new Map<string, Descriptor>();
    const siblings = await this.openMountSources(target.store);
    for (const d of built.blobs) {
      if (await target.store.exists(d, { signal: this.ac.signal })) continue;
      const at = await this.findMountable(siblings, d);
      if (at) this.mounts.set(d.digest, at);
      else if (dir && (await inContentStore(dir, d))) fromDir.set(d.digest, d);
      else needed.push(d);
    }
    if (this.state === 'closed') return;
    this.tracker.fields.layers = built.blobs.length;
    this.tracker.fields.needed = needed.length;
    this.blobs = new ClientBlobs(needed, fromDir, dir || undefined, (err) => this.fail(err));
    this.state = 'blobs';
    this.send({ msg: 'need_blobs', need_blobs: { digests: needed.map((d) => d.digest) } });
    this.startPush(built, new Set(needed.map((d) => d.digest)));
  }

  /** Stores of the other tiers on the target's registry (the only ones a mount can come from). */
  private async openMountSources(target: ContentStore): Promise<ContentStore[]> {
    const out: ContentStore[] = [];
    for (const spec of this.mountFrom) {
      const { store } = await openImport(spec, this.ctx.cfg.backend);
      this.mountStores.push(store);
      if (mountable(target, store)) out.push(store);
    }
    return out;
  }

  private async findMountable(siblings: ContentStore[], d: Descriptor): Promise<ContentStore | undefined> {
    for (const s of siblings) if (await s.exists(d, { signal: this.ac.signal })) return s;
    return undefined;
  }

  private startPush(built: BuiltCache, needed: Set<string>): void {
    const target = this.target!;
    const client = this.blobs!;
    // Blobs of another tier are mounted from it (transferBlob asks origin()); should the registry decline
    // the mount, they are read from that tier, which the caller may pull, never from anywhere else.
    const source: BlobSource = {
      fetch: (d, o) => this.mounts.get(d.digest)?.fetch(d, o) ?? client.fetch(d),
      origin: (digest) => this.mounts.get(digest),
    };
    const pushing = pushCache(promisedStore(target.store, needed), built, source, {
      tag: target.tag,
      signal: this.ac.signal,
      concurrency: 4,
      onProgress: (e) => this.progress(e),
    });
    this.pushing = pushing;
    pushing.then(
      (stats) => {
        this.ctx.metrics.addBytes('uploaded', stats.uploadedBytes);
        this.finish({
          manifest: built.manifest.desc,
          config: built.config.desc,
          target: target.name,
          tag: target.tag,
          stats: statsToWire({ ...stats, receivedBytes: this.blobs!.receivedBytes }),
          warnings: built.warnings,
        });
      },
      (err) => this.fail(err),
    );
  }

  private progress(e: ProgressEvent): void {
    if (this.state === 'closed') return;
    const p = this.toWire.convert(e);
    if (p) this.send({ msg: 'progress', progress: p });
  }

  private send(m: WireExportResponse): void {
    if (this.state !== 'closed' && !this.call.cancelled) this.call.write(m);
  }

  private finish(done: { manifest?: Descriptor; config?: Descriptor; target: string; tag: string; stats?: ReturnType<typeof statsToWire>; warnings: string[] }): void {
    if (this.state === 'closed') return;
    this.send({
      msg: 'done',
      done: {
        manifest: done.manifest ? descriptorToWire(done.manifest) : null,
        config: done.config ? descriptorToWire(done.config) : null,
        target: this.tracker.redact.text(done.target),
        tag: done.tag,
        stats: done.stats ?? null,
        warnings: done.warnings.map((w) => this.tracker.redact.text(w)),
      },
    });
    this.state = 'closed';
    if (done.manifest) this.tracker.fields.manifest = done.manifest.digest;
    if (done.stats) Object.assign(this.tracker.fields, { uploaded_bytes: done.stats.uploaded_bytes, received_bytes: done.stats.received_bytes, mounted: done.stats.mounted });
    this.tracker.audit.bytes = this.blobs?.receivedBytes ?? 0;
    this.ctx.metrics.addBytes('received', this.blobs?.receivedBytes ?? 0);
    this.call.end();
    this.tracker.end();
    this.cleanup();
  }

  private fail(err: unknown): void {
    if (this.state === 'closed') return;
    const e = asBkError(err);
    this.stop(e);
    if (!this.call.cancelled) this.call.emit('error', this.tracker.status(e));
  }

  /** Stops all work: no manifest is written after this (pushCache checks the signal before it). */
  private stop(e: BkError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.ac.abort(e);
    this.blobs?.abort(e);
    this.ctx.metrics.addBytes('received', this.blobs?.receivedBytes ?? 0);
    this.tracker.audit.bytes = this.blobs?.receivedBytes ?? 0;
    this.tracker.end(e);
    this.cleanup();
  }

  private clientEnded(): void {
    if (this.state === 'closed') return;
    if (this.state !== 'blobs') {
      this.fail(invalidArgument('the client ended the stream before graph_done', { reason: 'protocol' }));
      return;
    }
    // A client whose process died also shows up as end-of-stream, with the
    // cancellation noticed a moment later; wait for it so the log says
    // CANCELLED rather than blaming a protocol error on a vanished client.
    setTimeout(() => {
      if (this.call.cancelled) this.stop(new BkError('CANCELLED', 'the client went away mid-export'));
      else this.blobs?.clientEnded();
    }, 100);
  }

  /** Frees the export slot once pushCache has settled, so the cap counts real work. */
  private cleanup(): void {
    this.busy();
    // The target too: a registry store owns its HTTP client, whose idle connections otherwise stay open.
    const stores = this.mountStores.splice(0);
    if (this.target) stores.push(this.target.store);
    this.target = undefined;
    const closeStores = () => void Promise.all(stores.map((s) => s.close?.())).catch(() => undefined);
    if (this.pushing) this.pushing.then(closeStores, closeStores);
    else closeStores();
    const release = this.release;
    this.release = undefined;
    if (!release) return;
    if (this.pushing) this.pushing.then(release, release);
    else release();
  }
}

export function exportHandler(ctx: ServerContext) {
  return (call: Call): void => {
    new ExportSession(call, ctx);
  };
}
