import type { EventEmitter } from 'node:events';

/**
 * Resolves once a writable that refused more data can take it again
 * ('drain'), or never will ('close', or `signal` aborted): a writer awaiting
 * it neither queues without bound nor hangs on a stream that went away.
 */
export function drained(stream: EventEmitter, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    if (signal?.aborted) return resolve();
    stream.on('drain', done);
    stream.on('close', done);
    signal?.addEventListener('abort', done);
  });
}
