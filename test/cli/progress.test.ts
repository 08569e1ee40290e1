import { describe, expect, it } from 'vitest';
import { Progress, renderBlobLine } from '../../src/cli/progress.js';

describe('tty progress', () => {
  it('renders a bar with bytes and rate', () => {
    const line = renderBlobLine({ digest: 'sha256:' + 'ab'.repeat(32), size: 4 << 20, sent: 1 << 20, status: 'uploading', started: 0 }, 1000, 100);
    expect(line).toMatch(/^abababababab \[=+>\s+\] 1\.0 MiB\/4\.0 MiB\s+1\.0 MiB\/s\s+uploading$/);
    const done = renderBlobLine({ digest: 'sha256:' + 'cd'.repeat(32), size: 10, sent: 0, status: 'exists', started: 0, ended: 5 }, 9, 100);
    expect(done).toMatch(/\[=+\] 10 B\/10 B .*already there$/);
  });

  it('redraws in place on a terminal', () => {
    let out = '';
    const fake = { isTTY: true, columns: 100, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
    const p = new Progress('auto', fake);
    expect(p.mode).toBe('tty');
    p.onEvent({ type: 'blob', digest: 'sha256:' + 'ab'.repeat(32), size: 100, status: 'uploading', sent: 50 });
    p.onEvent({ type: 'blob', digest: 'sha256:' + 'ab'.repeat(32), size: 100, status: 'uploaded' });
    p.done();
    expect(out).toContain('\x1b[2K');
    expect(out).toMatch(/uploaded/);
  });
});
