// Oversized request metadata gets an answer at once. Two layers:
//
// - Metadata the transport accepts but that is over limits.maxMetadataBytes
//   (a 32 KiB `authorization`, a pile of custom headers) is refused by
//   checkMetadataSize, the first thing every call does, with
//   RESOURCE_EXHAUSTED: before the token is parsed or anything else is done.
// - A header block HTTP/2 itself cannot take (one field over nghttp2's 64 KiB
//   limit, such as a 1 MiB `authorization`) makes node's HTTP/2 server stop
//   reading the connection without closing it or surfacing a stream: on a
//   unix socket the client then waits forever with its request half-written.
//   guardHeaderBlocks watches each connection for that state (a stream id
//   the session has begun but never handed to grpc-js) and closes the
//   connection, so the client fails at once (UNAVAILABLE) and the daemon
//   frees what the connection held.
import * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { resourceExhausted } from '../errors.js';
import { http2ServersOf } from './tuning.js';

/** Bytes of a call's metadata, names and values, as HTTP/2 counts a header list (32 bytes per entry). */
export function metadataBytes(md: grpc.Metadata): number {
  let n = 0;
  for (const [k, vs] of Object.entries(md.toHttp2Headers())) {
    for (const v of Array.isArray(vs) ? vs : [vs]) n += 32 + k.length + (Buffer.isBuffer(v) ? v.length : String(v ?? '').length);
  }
  return n;
}

export function checkMetadataSize(md: grpc.Metadata, max: number): void {
  const n = metadataBytes(md);
  if (n > max) throw resourceExhausted(`request metadata is ${n} bytes, over the ${max}-byte limit (limits.maxMetadataBytes)`, { reason: 'metadata-too-large' });
}

/** How often a connection is looked at, and how many looks in a row it may show a stuck header block. */
const CHECK_MS = 250;
const STUCK_CHECKS = 4;

const guarded = new WeakSet<object>();

export function guardHeaderBlocks(server: grpc.Server, onClose: (why: string) => void): void {
  for (const h of http2ServersOf(server)) {
    if (guarded.has(h)) continue;
    guarded.add(h);
    h.on('session', (session: http2.ServerHttp2Session) => watch(session, onClose));
  }
}

function watch(session: http2.ServerHttp2Session, onClose: (why: string) => void): void {
  let surfaced = 0;
  let stuck = 0;
  session.on('stream', (st: http2.ServerHttp2Stream) => {
    if (st.id !== undefined && st.id > surfaced) surfaced = st.id;
  });
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) {
      clearInterval(timer);
      return;
    }
    let begun: number | undefined;
    try {
      begun = session.state.lastProcStreamID;
    } catch {
      return; // the session went away between the check above and here
    }
    stuck = begun !== undefined && begun > surfaced ? stuck + 1 : 0;
    if (stuck >= STUCK_CHECKS) {
      clearInterval(timer);
      onClose('a request header block the HTTP/2 layer could not take (over its 64 KiB field limit); connection closed');
      // ENHANCE_YOUR_CALM: grpc-js clients report it as RESOURCE_EXHAUSTED, which is what it is.
      session.destroy(undefined, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }, CHECK_MS);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
