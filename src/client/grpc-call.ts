// One bidirectional-streaming gRPC call over node:http2, written for
// Export's blob stream.
//
// Why not grpc-js here: grpc-js frames every outgoing message into a fresh
// copy (a 5-byte prefix plus the message), so a client streaming 1 GiB of
// blobs allocated and copied 1 GiB more, and collecting those buffers was
// most of the client's CPU time in the Export benchmark. Here a blob chunk is
// framed in the room in front of its data (blob-chunk.ts) and handed to
// HTTP/2 as it is. Every other RPC still goes through grpc-js.
//
// The wire protocol: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
// (requests, Length-Prefixed-Message, responses and Trailers-Only, and
// grpc-timeout); HTTP statuses without a grpc-status are mapped as in
// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import { Metadata, status as Status } from '@grpc/grpc-js';
import type { H2Channel } from './h2-channel.js';

/** The 5-byte prefix of a Length-Prefixed-Message: compressed flag (0) and length. */
export const FRAME_PREFIX = 5;

/** Writes the prefix of an uncompressed message of `length` bytes at `buf[at]`. */
export function putFramePrefix(buf: Buffer, at: number, length: number): void {
  buf[at] = 0;
  buf.writeUInt32BE(length, at + 1);
}

/** The call's final status: what grpc-js reports as a ServiceError, so fromServiceError reads it alike. */
export interface CallStatus {
  code: Status;
  details: string;
  metadata: Metadata;
}

export interface CallOptions<Req, Res> {
  /** "/package.Service/Method". */
  path: string;
  serialize(m: Req): Buffer;
  deserialize(b: Buffer): Res;
  /** Custom metadata (authorization, …). */
  metadata?: Record<string, string>;
  /** Absolute deadline (Date.now() milliseconds). */
  deadline?: number;
  maxReceiveBytes: number;
}

const HTTP_TO_GRPC: Record<number, Status> = {
  400: Status.INTERNAL,
  401: Status.UNAUTHENTICATED,
  403: Status.PERMISSION_DENIED,
  404: Status.UNIMPLEMENTED,
  429: Status.UNAVAILABLE,
  502: Status.UNAVAILABLE,
  503: Status.UNAVAILABLE,
  504: Status.UNAVAILABLE,
};

/** grpc-timeout allows at most 8 digits; a unit is picked so the value fits. */
export function grpcTimeout(ms: number): string {
  const n = Math.max(0, Math.ceil(ms));
  if (n < 1e8) return `${n}m`;
  const s = Math.ceil(n / 1000);
  return s < 1e8 ? `${s}S` : `${Math.min(Math.ceil(s / 3600), 99_999_999)}H`;
}

/**
 * Events, in order: 'data' (each response message), 'drain' (the request
 * side can take more), then exactly one 'status' (CallStatus; code 0 is
 * success, after every message was delivered) and 'close'.
 */
export class GrpcCall<Req, Res> extends EventEmitter {
  private readonly stream: http2.ClientHttp2Stream;
  private readonly timer?: NodeJS.Timeout;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private status?: CallStatus;
  private local?: { code: Status; details: string };
  private transportError?: Error;
  private finished = false;

  constructor(
    channel: H2Channel,
    private readonly opts: CallOptions<Req, Res>,
  ) {
    super();
    const headers: http2.OutgoingHttpHeaders = {
      ...opts.metadata,
      ':method': 'POST',
      ':path': opts.path,
      ':authority': channel.authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
    };
    if (opts.deadline !== undefined) headers['grpc-timeout'] = grpcTimeout(opts.deadline - Date.now());
    this.stream = channel.request(headers);
    // The daemon enforces grpc-timeout too; this timer also covers a daemon that never answers.
    if (opts.deadline !== undefined) {
      this.timer = setTimeout(() => this.cancel(Status.DEADLINE_EXCEEDED, 'Deadline exceeded'), Math.max(0, opts.deadline - Date.now()));
    }
    this.stream.on('response', (h) => this.onHeaders(h));
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('trailers', (h) => this.onTrailers(h));
    this.stream.on('drain', () => this.emit('drain'));
    this.stream.on('error', (err) => (this.transportError ??= err));
    this.stream.on('end', () => {
      if (!this.status) return;
      // The daemon is done, even if we were not (a failed export): free the stream.
      this.finish();
      if (!this.stream.closed) this.stream.close();
    });
    this.stream.on('close', () => this.finish());
  }

  /**
   * Sends one request. A Buffer is taken as a complete Length-Prefixed-Message
   * (prefix included), an array of Buffers as one in pieces; either is written
   * without a copy, so its bytes must not change until `written` is called
   * (once HTTP/2 is done with them). Returns false when the caller should
   * wait for 'drain'.
   */
  write(m: Req | Buffer | Buffer[], written?: (err?: Error | null) => void): boolean {
    if (this.finished || this.stream.writableEnded || this.stream.destroyed) {
      if (written) queueMicrotask(() => written(new Error('the call has ended')));
      return true;
    }
    if (Buffer.isBuffer(m)) return this.stream.write(m, written);
    let pieces: Buffer[];
    if (Array.isArray(m)) pieces = m;
    else {
      const body = this.opts.serialize(m);
      const prefix = Buffer.allocUnsafe(FRAME_PREFIX);
      putFramePrefix(prefix, 0, body.length);
      pieces = [prefix, body];
    }
    // Corked, the pieces leave as one write.
    this.stream.cork();
    let ok = true;
    pieces.forEach((p, i) => (ok = this.stream.write(p, i === pieces.length - 1 ? written : undefined)));
    this.stream.uncork();
    return ok;
  }

  /** Half-closes: no more requests. */
  end(): void {
    if (!this.finished && !this.stream.writableEnded) this.stream.end();
  }

  /** Ends the call now; the status is `code` unless the daemon's arrived first. */
  cancel(code: Status = Status.CANCELLED, details = 'Cancelled on client'): void {
    if (this.finished || this.status) return;
    this.local ??= { code, details };
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private onHeaders(h: http2.IncomingHttpHeaders): void {
    const http = Number(h[':status']);
    if (h['grpc-status'] !== undefined) return this.onTrailers(h); // Trailers-Only
    if (http !== 200) {
      this.local ??= { code: HTTP_TO_GRPC[http] ?? Status.UNKNOWN, details: `the daemon answered HTTP ${http}` };
    } else if (!String(h['content-type'] ?? '').startsWith('application/grpc')) {
      this.local ??= { code: Status.UNKNOWN, details: `the daemon answered content-type ${h['content-type']}` };
    } else return;
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private onData(chunk: Buffer): void {
    if (this.local) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= FRAME_PREFIX) {
      if (this.pending[0]!.length < FRAME_PREFIX) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
      const first = this.pending[0]!;
      const compressed = first[0] !== 0;
      const length = first.readUInt32BE(1);
      if (compressed) return this.cancel(Status.INTERNAL, 'the daemon sent a compressed message; identity was asked for');
      if (length > this.opts.maxReceiveBytes) {
        return this.cancel(Status.RESOURCE_EXHAUSTED, `received message larger than max (${length} vs. ${this.opts.maxReceiveBytes})`);
      }
      // Joined once the whole message is here, not on every DATA frame.
      if (this.pendingBytes < FRAME_PREFIX + length) return;
      const head = this.pending.length === 1 ? first : Buffer.concat(this.pending, this.pendingBytes);
      const rest = head.subarray(FRAME_PREFIX + length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
      let msg: Res;
      try {
        msg = this.opts.deserialize(head.subarray(FRAME_PREFIX, FRAME_PREFIX + length));
      } catch (err) {
        return this.cancel(Status.INTERNAL, `could not parse the daemon's response: ${(err as Error).message}`);
      }
      this.emit('data', msg);
    }
  }

  private onTrailers(h: http2.IncomingHttpHeaders): void {
    if (this.status) return;
    const code = Number(h['grpc-status']);
    let details = String(h['grpc-message'] ?? '');
    try {
      details = decodeURIComponent(details);
    } catch {
      // Not percent-encoded after all: keep it as it came.
    }
    this.status = {
      code: Number.isInteger(code) ? code : Status.UNKNOWN,
      details,
      metadata: Metadata.fromHttp2Headers(h),
    };
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    let st = this.local ? { ...this.local, metadata: new Metadata() } : this.status;
    if (st?.code === Status.OK && this.pendingBytes > 0) st = { code: Status.INTERNAL, details: 'the response ended inside a message', metadata: st.metadata };
    this.emit('status', st ?? this.lostStatus());
    this.emit('close');
  }

  /**
   * The stream closed without a gRPC status. A lost connection shows up as
   * a stream error or as a CANCEL reset (node resets the streams of a session
   * whose socket closed), and is UNAVAILABLE, as grpc-js reports it; our own
   * cancel never gets here (this.local).
   */
  private lostStatus(): CallStatus {
    const metadata = new Metadata();
    const err = this.transportError as (Error & { code?: string }) | undefined;
    if (err && err.code !== 'ERR_HTTP2_STREAM_ERROR') {
      return { code: Status.UNAVAILABLE, details: `daemon connection failed: ${err.message}`, metadata };
    }
    const rst = this.stream.rstCode ?? http2.constants.NGHTTP2_INTERNAL_ERROR;
    const code =
      rst === http2.constants.NGHTTP2_REFUSED_STREAM || rst === http2.constants.NGHTTP2_CANCEL
        ? Status.UNAVAILABLE
        : rst === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM
          ? Status.RESOURCE_EXHAUSTED
          : rst === http2.constants.NGHTTP2_INADEQUATE_SECURITY
            ? Status.PERMISSION_DENIED
            : Status.INTERNAL;
    return { code, details: `the daemon connection ended the call without a status (HTTP/2 code ${rst})`, metadata };
  }
}
