import type { EventEmitter } from 'node:events';

/**
 * Resolves once a writable that refused more data can take it again
 * ('drain'), or never will ('close'): a writer awaiting it neither queues
 * without bound nor hangs on a stream that went away.
 */
export function drained(stream: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
