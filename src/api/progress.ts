// Progress events on the wire (the Progress message of cache.proto), shared by
// Export's and CopyStream's handlers and by the client that shows them.
import type { ProgressEvent } from '../cache/transfer.js';
import type { WireProgress } from './proto.js';

/** Byte counts come per chunk; a few updates a second per blob is plenty. */
const BYTE_UPDATE_MS = 200;

/** Converts transfer events to wire messages, dropping byte-count updates that come too fast to matter. */
export class ProgressToWire {
  private readonly last = new Map<string, number>();

  /** The message for `e`, or undefined when it is a byte-count update to skip. */
  convert(e: ProgressEvent): WireProgress | undefined {
    const p: WireProgress = { kind: e.type, digest: e.digest, size: 'size' in e ? e.size : 0, status: '', sent: 0, tag: '' };
    if (e.type === 'tag') {
      p.status = 'tagged';
      p.tag = e.tag;
      return p;
    }
    p.status = e.status;
    if (e.type === 'blob' && e.status === 'uploading' && e.sent) {
      const now = Date.now();
      if (now - (this.last.get(e.digest) ?? 0) < BYTE_UPDATE_MS) return undefined;
      this.last.set(e.digest, now);
      p.sent = e.sent;
    }
    return p;
  }
}

/** A wire message back to the event the CLI's progress display takes. */
export function progressFromWire(p: WireProgress): ProgressEvent {
  if (p.kind === 'tag') return { type: 'tag', digest: p.digest, tag: p.tag };
  if (p.kind === 'blob') {
    return { type: 'blob', digest: p.digest, size: Number(p.size), status: p.status as 'uploading', ...(p.sent ? { sent: Number(p.sent) } : {}) };
  }
  return { type: p.kind as 'config' | 'manifest', digest: p.digest, size: Number(p.size), status: p.status as 'uploaded' };
}
