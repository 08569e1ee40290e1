// Benchmark: what re-exporting over an existing local layout costs now that
// the store proves a same-digest blob's bytes before skipping it (issue 10,
// item 5; see src/store/local/blob-file.ts). 8 blobs of 32 MiB are written
// by one process (hash + write + fsync), then pushed again by a fresh
// process, which hashes each existing file once and writes nothing.
// Target: the re-export takes less time than the first write (ratio < 1):
// verifying a blob never costs more than copying it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function worker(args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [path.join(here, 'local-worker.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

export function localBench(): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'bkcache-bench-local-'));
  try {
    const first = worker(['write', path.join(dir, 'layout'), '8', '32']);
    const descs = path.join(dir, 'descs.json');
    writeFileSync(descs, JSON.stringify(first.descs));
    const again = worker(['reexport', path.join(dir, 'layout'), descs]);
    const skipped = (again.outcomes as string[]).every((o) => o === 'exists');
    const ratio = (again.ms as number) / (first.ms as number);
    console.log('local: re-export over an existing layout, existing blobs verified (target: ratio < 1, nothing rewritten)');
    console.log(
      `  256 MiB  first write ${first.ms} ms  re-export ${again.ms} ms  ratio ${ratio.toFixed(2)}  ${ratio < 1 && skipped ? 'target met' : 'TARGET MISSED'}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
