// One bad blob must not take the daemon down (issue 10, item 4): a real
// `bkcache serve` process copies caches whose layers come back wrong from a
// registry (through the fault proxy, and from a real registry with a
// corrupted blob file), answers each with a typed error naming the digest
// and the source, leaves no lease behind, and serves the next call. The CLI
// does the same in one process: one line on stderr, exit 1.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type CacheClient } from '../src/client/index.js';
import { BkError } from '../src/errors.js';
import { synthetic, type Synthetic } from '../test/client/synthetic.js';
import { runCli } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from './harness/fault-proxy.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

let reg: StartedRegistry;
let proxy: FaultProxy;
let d: DaemonProcess;
let client: CacheClient;
let tmp: string;
let cache: Synthetic;

const spec = (host: string, repo: string) => `type=registry,ref=${host}/${repo}:cache,registry.insecure=true`;
/**
 * The layer a fault hits: a small one for wrong content, which then fails
 * while the export still checks its target and nobody reads the stream yet
 * (what crashed the daemon); the 2.5 MB one where cuts and ranges must land mid-body.
 */
const small = () => cache.layers[4]!;
const big = () => cache.layers[1]!;
const get = (layer: () => { digest: string }) => (r: { method: string; path: string }) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer().digest}`);

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-bad-blobs-'));
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  // Small waits so slow and dropping registries fail within the test; defaults are minutes.
  const config = path.join(tmp, 'config.yml');
  writeFileSync(config, 'registry:\n  timeouts: { headersSeconds: 2, idleSeconds: 1, manifestSeconds: 5, minBytesPerSecond: 100000, maxResumes: 2 }\n');
  d = await startDaemon({ args: ['--config', config], env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } });
  client = connect(d.addr);
  cache = synthetic();
  await client.export(spec(reg.host, 'bad/src'), cache.graph, cache.provider);
});
afterAll(async () => {
  client?.close();
  await d?.stop();
  d?.cleanup();
  await proxy?.stop();
  await reg?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Lease files under a local store (a live export holds one; a finished one, none). */
function leases(dir: string): string[] {
  const l = path.join(dir, '.bkcache', 'leases');
  return existsSync(l) ? readdirSync(l) : [];
}

/** The daemon is up and does real work: a clean copy from the registry itself. */
async function stillServing(n: number): Promise<void> {
  expect(d.alive()).toBe(true);
  const res = await client.copy([spec(reg.host, 'bad/src')], `type=local,dest=ok/${n}`);
  expect(res.manifest?.digest).toMatch(/^sha256:/);
}

const flipSmall: FaultRule = { name: 'flip', match: get(small), action: { rewrite: (r) => void (r.body[100] ^= 0xff) } };
const cases: [name: string, code: string, victim: () => { digest: string }, rules: FaultRule[]][] = [
  ['wrong content', 'DATA_LOSS', small, [flipSmall]],
  ['wrong content in a large blob', 'DATA_LOSS', big, [{ name: 'flip-big', match: get(big), action: { rewrite: (r) => void (r.body[100] ^= 0xff) } }]],
  ['too long', 'DATA_LOSS', small, [{ name: 'long', match: get(small), action: { rewrite: (r) => void (r.body = Buffer.concat([r.body, r.body.subarray(0, 10)])), framing: 'chunked' } }]],
  ['too short', 'DATA_LOSS', small, [{ name: 'short', match: get(small), action: { rewrite: (r) => void (r.body = r.body.subarray(10)), framing: 'chunked' } }]],
  ['a claimed size of 5 GB', 'DATA_LOSS', small, [{ name: '5g', match: get(small), action: { rewrite: (r) => void (r.headers['content-length'] = String(5 << 30)), framing: 'as-rewritten' } }]],
  [
    'a lying Range reply',
    'DATA_LOSS',
    big,
    [
      { name: 'cut', match: get(big), times: 1, action: { cutResponseAfterBytes: 500_000 } },
      { name: 'flip-range', match: get(big), action: { rewrite: (r) => void (r.body[0] ^= 0xff) } },
    ],
  ],
  ['a connection dropped after every byte', 'UNAVAILABLE', big, [{ name: 'drop', match: get(big), action: { cutResponseAfterBytes: 1 } }]],
  ['a trickle', 'UNAVAILABLE', big, [{ name: 'trickle', match: get(big), action: { trickle: { bytes: 1000, everyMs: 50 } } }]],
];

describe('a daemon copying bad blobs', () => {
  for (const [i, [name, code, victim, rules]] of cases.entries()) {
    it(`${name}: ${code} naming the blob and the source, no lease left, the daemon serves on`, async () => {
      proxy.reset();
      proxy.rules.push(...rules);
      const err = await client.copy([spec(proxy.host, 'bad/src')], `type=local,dest=bad/${i}`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BkError);
      expect((err as BkError).code).toBe(code);
      expect((err as BkError).message).toContain(victim().digest);
      expect((err as BkError).message).toContain(`${proxy.host}/bad/src`);
      expect(leases(path.join(d.root, 'bad', String(i)))).toEqual([]);
      await stillServing(i);
    });
  }

  it('wrong content on the way to a registry target: DATA_LOSS, and nothing tagged', async () => {
    proxy.reset();
    proxy.rules.push(flipSmall);
    const err = await client.copy([spec(proxy.host, 'bad/src')], spec(reg.host, 'bad/target')).catch((e: unknown) => e);
    expect((err as BkError).code).toBe('DATA_LOSS');
    expect((await fetch(`${reg.url}/v2/bad/target/manifests/cache`, { method: 'HEAD' })).status).toBe(404);
    await stillServing(100);
  });

  it('FetchBlob of a bad blob: DATA_LOSS, the daemon serves on', async () => {
    proxy.reset();
    proxy.rules.push(flipSmall);
    const err = await client.readBlob(spec(proxy.host, 'bad/src'), small()).catch((e: unknown) => e);
    expect((err as BkError).code).toBe('DATA_LOSS');
    await stillServing(102);
  });

  it('a real registry with a corrupted blob file: DATA_LOSS, the daemon serves on', async () => {
    const own = synthetic([3_000, 200_000], 'corrupt');
    await client.export(spec(reg.host, 'bad/corrupt'), own.graph, own.provider);
    const layer = own.layers[0]!;
    writeFileSync(reg.blobPath(layer.digest), Buffer.alloc(layer.size, 0x61));
    const err = await client.copy([spec(reg.host, 'bad/corrupt')], 'type=local,dest=bad/corrupt').catch((e: unknown) => e);
    expect((err as BkError).code).toBe('DATA_LOSS');
    expect((err as BkError).message).toContain(layer.digest);
    expect(leases(path.join(d.root, 'bad', 'corrupt'))).toEqual([]);
    await stillServing(101);
  });
});

describe('the CLI copying a bad blob', () => {
  it('prints one line, exits 1, and leaves no lease file', async () => {
    proxy.reset();
    proxy.rules.push(flipSmall);
    const dest = path.join(tmp, 'cli-dest');
    const r = await runCli(['copy', '--progress', 'quiet', '--import-cache', spec(proxy.host, 'bad/src'), '--export-cache', `type=local,dest=${dest}`]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bkcache: error: .*\[DATA_LOSS\]$/);
    expect(lines[0]).toContain(small().digest);
    expect(leases(dest)).toEqual([]);
  });
});
