// Bad bytes and slow answers from a real registry behind the fault proxy
// (issue 10, items 4, 10, 11): every one ends in bounded time with a typed
// error (DATA_LOSS, DEADLINE_EXCEEDED, UNAVAILABLE), never INTERNAL, and a
// verifying stream that fails before anyone reads it never becomes an
// unhandled 'error' event (vitest fails the run on one). The timeouts are
// small here; request counts, not clocks, show the bounds.
import { describe, expect, it } from 'vitest';
import { importChain } from '../src/cache/operations.js';
import { MT } from '../src/oci/media-types.js';
import type { RegistryTimeouts } from '../src/store/registry/index.js';
import { blobOf, manifestOf, readStream, uniqueBytes } from '../test/store/conformance.js';
import type { FaultRule } from './harness/fault-proxy.js';
import { failure, faultyRegistry } from './harness/faulty-registry.js';

const RETRY = { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 10_000 };
// Defaults stay large, so a test that passes proves the check it names, not a timeout.
const TIMEOUTS: Partial<RegistryTimeouts> = { maxResumes: 3 };

const env = faultyRegistry({ retry: RETRY });
const store = (repo: string, timeouts: Partial<RegistryTimeouts> = {}) => env.store(repo, { timeouts: { ...TIMEOUTS, ...timeouts } });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const getBlob = (digest: string) => (r: { method: string; path: string }) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`);
const gets = (digest: string) => env.proxy.log.filter(getBlob(digest));

/** A blob pushed without faults; the proxy log starts empty after it. */
async function pushed(size: number, repo = 'bounds/blobs') {
  const bytes = uniqueBytes(size);
  const d = blobOf(bytes);
  await store(repo).push(d, bytes);
  env.proxy.log.length = 0;
  return { bytes, d };
}

/** A manifest (and its config) pushed without faults. */
async function pushedManifest() {
  const s = store('bounds/manifest');
  const cfg = uniqueBytes(50);
  const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
  await s.push(cfgDesc, cfg);
  const m = manifestOf(cfgDesc, []);
  await s.push(m.desc, m.bytes);
  return { s, m };
}

describe('wrong bytes for a blob: DATA_LOSS naming the digest and the source', () => {
  const cases: [string, (digest: string) => FaultRule['action']][] = [
    ['wrong content, right length', () => ({ rewrite: (r) => void (r.body[10] ^= 0xff) })],
    ['too long, no Content-Length', () => ({ rewrite: (r) => void (r.body = Buffer.concat([r.body, Buffer.from('extra')])), framing: 'chunked' })],
    ['too short, no Content-Length', () => ({ rewrite: (r) => void (r.body = r.body.subarray(1)), framing: 'chunked' })],
    ['Content-Length of 5 GB', () => ({ rewrite: (r) => void (r.headers['content-length'] = String(5 << 30)), framing: 'as-rewritten' })],
    ['Content-Length one short', () => ({ rewrite: (r) => void (r.headers['content-length'] = String(r.body.length - 1)), framing: 'as-rewritten' })],
  ];
  for (const [name, action] of cases) {
    it(`${name}: fails once read, even when the stream is read late`, async () => {
      const { d } = await pushed(5_000);
      env.proxy.rules.push({ name, match: getBlob(d.digest), action: action(d.digest) });
      const s = store('bounds/blobs');
      // The failing stream sits unread first, as in an export that checks its target before reading.
      const err = await failure(
        s.fetch(d).then(async (stream) => {
          await sleep(100);
          return readStream(stream);
        }),
      );
      expect(err.code).toBe('DATA_LOSS');
      expect(err.message).toContain(d.digest);
      expect(err.message).toContain(`registry:${env.proxy.host}/bounds/blobs`);
      // Not retried, not resumed: the registry's answer was a lie, not an outage.
      expect(gets(d.digest).length).toBe(1);
    });
  }

  it('a descriptor that claims 5 GB for a small blob fails before the first byte', async () => {
    const { d } = await pushed(5_000);
    const err = await failure(store('bounds/blobs').fetch({ ...d, size: 5 * 2 ** 30 }));
    expect(err.code).toBe('DATA_LOSS');
    expect(err.reason).toBe('size-mismatch');
  });

  it('a lying Range reply on resume: wrong bytes fail the digest, a wrong start fails at once', async () => {
    const { d } = await pushed(300_000);
    const cutThenFlip: FaultRule[] = [
      { name: 'cut', match: getBlob(d.digest), times: 1, action: { cutResponseAfterBytes: 100_000 } },
      { name: 'flip', match: getBlob(d.digest), action: { rewrite: (r) => void (r.body[0] ^= 0xff), framing: 'fixed' } },
    ];
    env.proxy.rules.push(...cutThenFlip);
    let err = await failure(store('bounds/blobs').fetch(d).then(readStream));
    expect(err.code).toBe('DATA_LOSS');
    expect(err.reason).toBe('digest-mismatch');
    expect(gets(d.digest).map((r) => r.fault)).toEqual(['cut', 'flip']);

    env.proxy.reset();
    env.proxy.rules.push(cutThenFlip[0]!, {
      name: 'shift',
      match: getBlob(d.digest),
      action: { rewrite: (r) => void (r.headers['content-range'] = String(r.headers['content-range']).replace(/^bytes (\d+)-/, (_m, a: string) => `bytes ${Number(a) - 1}-`)) },
    });
    err = await failure(store('bounds/blobs').fetch(d).then(readStream));
    expect(err.code).toBe('DATA_LOSS');
    expect(err.reason).toBe('bad-range');
  });
});

describe('bounded waits', () => {
  it('a manifest trickled a byte at a time hits the manifest deadline: DEADLINE_EXCEEDED', async () => {
    const { s, m } = await pushedManifest();
    env.proxy.rules.push({ name: 'trickle', match: (r) => r.method === 'GET' && r.path.includes('/manifests/'), action: { trickle: { bytes: 1, everyMs: 100 } } });
    const err = await failure(store('bounds/manifest', { manifestMs: 800 }).fetch(m.desc));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toContain(m.desc.digest);
  });

  it('a manifest whose Content-Length disagrees with its descriptor fails at once with DATA_LOSS', async () => {
    const { s, m } = await pushedManifest();
    env.proxy.rules.push({
      name: 'long',
      match: (r) => r.method === 'GET' && r.path.includes('/manifests/'),
      action: { rewrite: (r) => void (r.headers['content-length'] = String(r.body.length + 100)), framing: 'as-rewritten' },
    });
    const err = await failure(s.fetch(m.desc));
    expect(err.code).toBe('DATA_LOSS');
    expect(err.reason).toBe('size-mismatch');
  });

  it('headers never sent: each attempt times out, then UNAVAILABLE after the retry budget', async () => {
    const { d } = await pushed(1_000);
    env.proxy.rules.push({ name: 'hang', match: getBlob(d.digest), action: { hang: true } });
    const err = await failure(store('bounds/blobs', { headersMs: 200 }).fetch(d));
    expect(err.code).toBe('UNAVAILABLE');
    expect(gets(d.digest).length).toBe(RETRY.maxAttempts);
  });

  it('a registry that drops every download after a byte: resumes capped in all, UNAVAILABLE', async () => {
    const { d } = await pushed(50_000);
    env.proxy.rules.push({ name: 'drop', match: getBlob(d.digest), action: { cutResponseAfterBytes: 1 } });
    const err = await failure(store('bounds/blobs').fetch(d).then(readStream));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.reason).toBe('too-many-resumes');
    // Every attempt made progress, so only the total cap stops it: the first GET and maxResumes reopens.
    expect(gets(d.digest).length).toBe(1 + TIMEOUTS.maxResumes!);
  });

  it('a blob body below the minimum throughput is dropped and resumed, within the cap', async () => {
    const { d } = await pushed(20_000);
    env.proxy.rules.push({ name: 'trickle', match: getBlob(d.digest), action: { trickle: { bytes: 10, everyMs: 20 } } });
    const err = await failure(store('bounds/blobs', { idleMs: 300, minBytesPerSecond: 5_000 }).fetch(d).then(readStream));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/below the 5000 bytes\/s minimum/);
    expect(gets(d.digest).length).toBeLessThanOrEqual(1 + TIMEOUTS.maxResumes!);
  });

  it('a small blob trickled slower than the floor overall fails with DEADLINE_EXCEEDED, however its windows look', async () => {
    const { d } = await pushed(2_000);
    env.proxy.rules.push({ name: 'trickle', match: getBlob(d.digest), action: { trickle: { bytes: 10, everyMs: 20 } } });
    // 500 bytes/s against a 1000 bytes/s floor: the budget is 0.3 s + 2 s, the trickle needs 4 s.
    const err = await failure(store('bounds/blobs', { manifestMs: 300, minBytesPerSecond: 1_000 }).fetch(d).then(readStream));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(gets(d.digest).length).toBe(1);
  });

  it('a redirect loop fails at once as UNAVAILABLE, without retries', async () => {
    const { d } = await pushed(1_000);
    env.proxy.rules.push({ name: 'loop', match: getBlob(d.digest), action: { respond: 302, headers: { location: `/v2/bounds/blobs/blobs/${d.digest}` } } });
    const err = await failure(store('bounds/blobs').fetch(d));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.reason).toBe('too-many-redirects');
    expect(gets(d.digest).length).toBe(6);
  });

  it('an import whose manifest redirects in a loop fails at once as UNAVAILABLE', async () => {
    const path = '/v2/bounds/loop/manifests/cache';
    env.proxy.rules.push({ name: 'loop', match: (r) => r.path === path, action: { respond: 307, headers: { location: path } } });
    const spec = { type: 'registry', attrs: { ref: `${env.proxy.host}/bounds/loop:cache`, 'registry.insecure': 'true' } };
    const err = await failure(importChain([spec]));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.reason).toBe('too-many-redirects');
    expect(env.proxy.log.filter((r) => r.path === path).length).toBe(6);
  });
});
