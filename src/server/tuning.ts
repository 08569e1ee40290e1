// Transport and heap settings that decide how fast the daemon takes in blobs
// streamed over Export. Each one was measured with integration/bench/grpc.ts
// (1 GiB over a unix socket, 2 cores); the comments give what it changed.
import type * as http2 from 'node:http2';
import v8 from 'node:v8';
import type * as grpc from '@grpc/grpc-js';

/**
 * HTTP/2 receive window, per stream and per connection. Node's default is
 * 64 KiB for both, so a client streaming Export blobs could send only 64 KiB
 * per round trip between the two event loops, and nothing at all while the
 * daemon worked on the previous chunk: streaming Export took ~40% longer.
 * 4 MiB lets a few 1 MiB chunks wait in the daemon while it hashes and
 * writes. Memory stays bounded: a stream the daemon does not read (a paused
 * call) holds at most this much.
 */
export const RECEIVE_WINDOW_BYTES = 4 << 20;

/**
 * Largest HTTP/2 frame the daemon accepts. At the protocol's default of
 * 16 KiB a 1 MiB chunk arrives as 64 DATA frames, each a trip through node's
 * stream machinery and grpc-js's decoder in the daemon, and each a frame the
 * client builds: 1 MiB frames cut ~8% off a streaming export.
 * https://httpwg.org/specs/rfc9113.html#SETTINGS_MAX_FRAME_SIZE
 */
export const MAX_FRAME_BYTES = 1 << 20;

/**
 * grpc-js has no server options for these (its client has
 * grpc-node.flow_control_window), so this reaches into two of its private
 * fields: the options every http2 server is created with, and, once bound,
 * the http2 servers, to widen each new session's connection window. Guarded:
 * if a grpc-js release renames them, the daemon runs with node's defaults.
 */
type GrpcInternals = { commonServerOptions?: http2.ServerOptions; http2Servers?: Map<http2.Http2Server | http2.Http2SecureServer, unknown> };

/** The http2 servers grpc-js created (one per bound address), from its private field; empty if it was renamed. */
export function http2ServersOf(server: grpc.Server): (http2.Http2Server | http2.Http2SecureServer)[] {
  return [...((server as unknown as GrpcInternals).http2Servers?.keys() ?? [])];
}

export function tuneHttp2(server: grpc.Server, phase: 'construct' | 'bound'): void {
  const s = server as unknown as GrpcInternals;
  if (phase === 'construct') {
    if (s.commonServerOptions) {
      s.commonServerOptions.settings = { ...s.commonServerOptions.settings, initialWindowSize: RECEIVE_WINDOW_BYTES, maxFrameSize: MAX_FRAME_BYTES };
    }
    return;
  }
  for (const h of http2ServersOf(server)) {
    if (widened.has(h)) continue;
    widened.add(h);
    h.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(RECEIVE_WINDOW_BYTES);
      } catch {
        // the session closed before it started: nothing to widen
      }
    });
  }
}
const widened = new WeakSet<object>();

/**
 * V8's heap growing factor for the daemon process, in percent (V8's
 * --heap-growing-percent; factor = 1 + percent/100).
 *
 * Why: V8 counts the bytes of Buffers allocated since the last full GC
 * against the old generation's limit, and sets that limit from the live heap
 * times a growing factor. The daemon's heap is small (~15 MiB) and every MiB
 * streamed allocates fresh Buffers (socket reads, grpc-js message assembly),
 * so with V8's own factor it ran a full mark-compact every 15-30 MiB: ~40
 * per GiB, about a third of the daemon's CPU. A factor of 4, the top of the
 * range V8 picks from by itself, leaves 1-3 per GiB; peak RSS stayed under
 * 170 MiB. It is a factor, not a floor, so a daemon holding a large graph
 * grows its heap as V8 would at its fastest setting.
 */
export const HEAP_GROWING_PERCENT = 300;

/**
 * Applies HEAP_GROWING_PERCENT to this process, unless node was started with
 * its own --heap-growing-percent or $BKCACHE_HEAP_GROWING_PERCENT says
 * otherwise (0: leave V8's default). V8 reads this flag at every limit
 * computation, so setting it at run time takes effect from the next GC.
 * Only `bkcache serve` calls this: the client library never changes its
 * host process's flags. Returns the percent applied, or 0.
 */
export function tuneHeap(env: NodeJS.ProcessEnv = process.env, execArgv: string[] = process.execArgv): number {
  const flagged = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--heap[-_]growing[-_]percent\b/.test(a));
  if (flagged) return 0;
  const raw = env.BKCACHE_HEAP_GROWING_PERCENT;
  const percent = raw === undefined || raw === '' ? HEAP_GROWING_PERCENT : Number(raw);
  if (!Number.isInteger(percent) || percent < 0 || percent > 10_000) {
    throw new Error(`BKCACHE_HEAP_GROWING_PERCENT must be an integer from 0 to 10000, not ${JSON.stringify(raw)}`);
  }
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
