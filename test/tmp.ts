// Temporary directories for a test file, removed after its tests: the suites
// make hundreds of them, and a machine's /tmp should not keep them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

// Vitest loads this module afresh for each test file, so the hook belongs to that file.
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A new directory under the system temp dir, named `${prefix}XXXXXX`. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(d);
  return d;
}
