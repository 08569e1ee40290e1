// A hostile registry (or a man in the middle of plain HTTP) against the
// registry client: answers a real registry would never give, rewritten by
// the fault proxy in front of a real one. Each case must end in a typed
// error or a correct result, with no credentials sent where they do not belong.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MT } from '../src/oci/media-types.js';
import { blobOf, digestOfStream, generated, seedTaggedManifest, uniqueBytes } from '../test/store/conformance.js';
import { failure, faultyRegistry } from './harness/faulty-registry.js';

const RETRY = { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxElapsedMs: 10_000 };
const env = faultyRegistry({ retry: RETRY });

/** A server on another host name than the proxy's, answering 401 with a Basic challenge and recording what it was sent. */
async function foreignServer(): Promise<{ origin: string; seen: IncomingHttpHeaders[]; stop(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="foreign"', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // "localhost" is another host than the proxy's "127.0.0.1:port" as far as credentials go.
  const origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const isUploadStart = (r: { method: string; path: string }) => r.method === 'POST' && r.path.includes('/blobs/uploads/');

describe('upload locations', () => {
  it('an upload Location on another host gets no registry credentials, not even after its 401', async () => {
    const foreign = await foreignServer();
    try {
      env.proxy.rules.push({
        name: 'foreign-location',
        match: isUploadStart,
        action: { rewrite: (r) => void (r.headers.location = `${foreign.origin}/v2/upload/abc?_state=x`) },
      });
      const bytes = uniqueBytes(1000);
      for (const credentials of [{ username: 'user', password: 'secret' }, { registryToken: 'registry-secret' }]) {
        const s = env.store('hostile/location', { credentials, retry: { ...RETRY, maxAttempts: 1 } });
        const err = await failure(s.push(blobOf(bytes), bytes));
        expect(err.code).toBe('UNAUTHENTICATED');
      }
      expect(foreign.seen.length).toBe(2);
      expect(foreign.seen.map((h) => h.authorization)).toEqual([undefined, undefined]);
    } finally {
      await foreign.stop();
    }
  });

  it('an invalid or non-HTTP upload Location is a typed error, within the retry budget', async () => {
    for (const location of ['http://[::1', 'file:///etc/passwd']) {
      env.proxy.reset();
      env.proxy.rules.push({ name: 'bad-location', match: isUploadStart, action: { rewrite: (r) => void (r.headers.location = location) } });
      const bytes = uniqueBytes(500);
      const err = await failure(env.store('hostile/badloc').push(blobOf(bytes), bytes));
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.reason).toBe('bad-response');
      expect(env.proxy.log.filter((r) => isUploadStart(r)).length).toBeLessThanOrEqual(RETRY.maxAttempts);
    }
  });
});

describe('chunked uploads', () => {
  it('an OCI-Chunk-Min-Length far above any real limit gets one streamed PUT, not a whole layer buffered as one chunk', async () => {
    env.proxy.rules.push({
      name: 'huge-min-chunk',
      match: isUploadStart,
      action: { rewrite: (r) => void (r.headers['oci-chunk-min-length'] = String(2 ** 40)) },
    });
    const size = 12 << 20;
    const open = generated(size, 21);
    const { digest } = await digestOfStream(open());
    const d = { mediaType: MT.ociLayerGzip, digest, size };
    const s = env.store('hostile/chunk', { chunkSize: 5 << 20 });
    expect(await s.push(d, open)).toEqual({ outcome: 'uploaded', bytes: size });
    expect(env.proxy.log.filter((r) => r.method === 'PATCH').length).toBe(0);
    expect(env.proxy.log.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/')).length).toBe(1);
    expect(await digestOfStream(await s.fetch(d))).toEqual({ digest, size });
  });
});

describe('existence claims', () => {
  it('a HEAD that finds the digest with another size is not taken as the blob being there', async () => {
    const bytes = uniqueBytes(2000);
    const d = blobOf(bytes);
    const s = env.store('hostile/head');
    expect(await s.push(d, bytes)).toEqual({ outcome: 'uploaded', bytes: d.size });
    env.proxy.rules.push({
      name: 'head-size-lie',
      match: (r) => r.method === 'HEAD' && r.path.includes(`/blobs/${d.digest}`),
      action: { rewrite: (r) => void (r.headers['content-length'] = String(d.size + 1)) },
    });
    expect(await s.exists(d)).toBe(false);
    expect(await s.push(d, bytes)).toEqual({ outcome: 'uploaded', bytes: d.size });
    env.proxy.reset();
    expect(await s.exists(d)).toBe(true);
    expect(await s.push(d, bytes)).toEqual({ outcome: 'exists', bytes: 0 });
  });
});

describe('retry budgets', () => {
  it('a 503 storm on upload starts spends one retry budget, not one per layer of retries', async () => {
    env.proxy.rules.push({ name: '503-forever', match: isUploadStart, action: { respond: 503, headers: { 'retry-after': '0' } } });
    const bytes = uniqueBytes(1000);
    const err = await failure(env.store('hostile/storm').push(blobOf(bytes), bytes));
    expect(err.code).toBe('UNAVAILABLE');
    expect(env.proxy.log.filter(isUploadStart).length).toBe(RETRY.maxAttempts);
  });

  it('a chunked upload answered 503 with a huge Retry-After gives up within the budget instead of sleeping it per failure', async () => {
    env.proxy.rules.push({ name: '503-forever', match: (r) => r.method === 'PATCH', action: { respond: 503, headers: { 'retry-after': '3600' } } });
    const bytes = uniqueBytes(1000);
    const err = await failure(env.store('hostile/budget', { chunkSize: 5 << 20 }).push(blobOf(bytes), bytes));
    expect(err.code).toBe('UNAVAILABLE');
    // No wait taken inside a chunk: no status query between PATCHes.
    expect(env.proxy.log.filter((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/')).length).toBe(0);
    expect(env.proxy.log.filter((r) => r.method === 'PATCH').length).toBeLessThanOrEqual(RETRY.maxAttempts);
  });
});

describe('upload answers that lie (held up; kept as regression tests)', () => {
  it('a final PUT answered 201 naming another digest is DATA_LOSS', async () => {
    env.proxy.rules.push({
      name: 'commit-digest-lie',
      match: (r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'),
      action: { rewrite: (r) => void (r.headers['docker-content-digest'] = blobOf(uniqueBytes(7)).digest) },
    });
    const bytes = uniqueBytes(800);
    const err = await failure(env.store('hostile/commit').push(blobOf(bytes), bytes));
    expect([err.code, err.reason]).toEqual(['DATA_LOSS', 'digest-mismatch']);
  });

  it('a 202 without a Location is UNAVAILABLE bad-response, not retried as if the network failed', async () => {
    env.proxy.rules.push({ name: 'no-location', match: isUploadStart, action: { rewrite: (r) => void delete r.headers.location } });
    const bytes = uniqueBytes(800);
    const err = await failure(env.store('hostile/noloc').push(blobOf(bytes), bytes));
    expect([err.code, err.reason]).toEqual(['UNAVAILABLE', 'bad-response']);
    expect(env.proxy.log.filter(isUploadStart).length).toBe(1);
  });
});

describe('manifest HEADs', () => {
  // (A negative or fractional Content-Length never gets this far: undici refuses the answer, UNAVAILABLE after retries.)
  it.each([String(2 ** 60), String(64 << 20)])('a HEAD whose Content-Length is %s (past the manifest limit) is not taken as the manifest size', async (length) => {
    const s = env.store('hostile/mhead');
    const m = await seedTaggedManifest(s, 'seed');
    env.proxy.rules.push({
      name: 'head-length-lie',
      match: (r) => r.method === 'HEAD' && r.path.includes('/manifests/'),
      action: { rewrite: (r) => void (r.headers['content-length'] = length) },
    });
    // The GET fallback finds the real size.
    expect(await s.resolve('seed')).toMatchObject({ digest: m.desc.digest, size: m.desc.size });
  });
});
