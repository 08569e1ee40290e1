// What goes into the sidecar image. The image itself cannot be built here:
// its base images (node:20-bookworm, node:20-bookworm-slim) come from Docker
// Hub, which no test reaches. What can be checked with the real BuildKit is
// the build context: dockerd sends exactly what .dockerignore lets through,
// so a build that copies the whole context out (`--output type=local`) shows
// what any `docker build .` of this checkout gets to see. The Dockerfile's
// runtime stage is then read for what it copies from that.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/tmp.js';
import { ROOT } from './harness/cli.js';
import { startDockerd, type Dockerd } from './harness/dockerd.js';

let docker: Dockerd;

beforeAll(async () => {
  docker = await startDockerd();
}, 120_000);
afterAll(async () => {
  await docker?.stop();
});

describe('the sidecar image', () => {
  it('its build context holds the sources, never tests, benchmarks, builds or the git history', async () => {
    const work = tempDir('bkcache-image-');
    const dockerfile = path.join(work, 'context.Dockerfile');
    writeFileSync(dockerfile, 'FROM scratch\nCOPY . /context\n');
    const out = path.join(work, 'out');
    // -f outside the context: the context's own .dockerignore is the one that applies, as for `docker build .`.
    await docker.docker(['build', '--network=host', '--progress=plain', '-f', dockerfile, '--output', `type=local,dest=${out}`, ROOT], { timeoutMs: 300_000 });
    const got = new Set(readdirSync(path.join(out, 'context')));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'proto', 'src', 'Dockerfile']) expect(got, needed).toContain(needed);
    for (const kept of ['test', 'integration', 'node_modules', 'dist', '.git', '.ci']) expect(got, kept).not.toContain(kept);
  }, 300_000);

  it('its runtime stage copies the built CLI and library, the proto and production modules only', () => {
    const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const stages = text.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    const runtime = stages[1]!;
    const copies = [...runtime.matchAll(/^COPY (?:--from=(\S+) )?(\S+) (\S+)$/gm)].map((m) => ({ from: m[1], src: m[2]! }));
    expect(copies.map((c) => c.src).sort()).toEqual(['/src/dist/src', '/src/node_modules', '/src/package.json', '/src/proto']);
    expect(copies.every((c) => c.from === 'build')).toBe(true);
    // The build stage prunes dev dependencies (vitest, typescript) before the runtime stage copies node_modules.
    expect(stages[0]).toMatch(/npm prune --omit=dev/);
    expect(existsSync(path.join(ROOT, '.dockerignore'))).toBe(true);
  });
});
