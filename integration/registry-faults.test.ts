// Failure handling against a real registry behind a fault-injecting proxy:
// rate limits, outages, dropped connections, auth loops and lying servers.
// Request counts prove retries are bounded (no retry storms) and final
// errors carry the right code.
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MT } from '../src/oci/media-types.js';
import { RegistryStore } from '../src/store/registry/index.js';
import { importChain, inspectCache } from '../src/cache/operations.js';
import { blobOf, digestOfStream, generated, manifestOf, readStream, seedTaggedManifest, uniqueBytes } from '../test/store/conformance.js';
import { failure, faultyRegistry } from './harness/faulty-registry.js';
import { startTokenServer } from './harness/token-server.js';

const RETRY = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 100, maxElapsedMs: 10_000 };

const env = faultyRegistry({ retry: RETRY });
const store = env.store;

const count = (method: string, part: string) => env.proxy.log.filter((r) => r.method === method && r.path.includes(part)).length;
const errBody = (code: string) => JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] });

/** A manifest with its config, pushed straight to the registry (no faults). */
async function seedManifest(repo: string) {
  const m = await seedTaggedManifest(store(repo), 'seed');
  env.proxy.log.length = 0;
  return m;
}

describe('rate limits and outages', () => {
  it('waits for Retry-After on 429, then succeeds', async () => {
    await seedManifest('faults/ratelimit');
    env.proxy.rules.push({
      name: '429',
      match: (r) => r.method === 'HEAD' && r.path.includes('/manifests/'),
      times: 1,
      action: { respond: 429, headers: { 'retry-after': '1' }, body: errBody('TOOMANYREQUESTS') },
    });
    const t0 = Date.now();
    await store('faults/ratelimit').resolve('seed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(count('HEAD', '/manifests/')).toBe(2);
  });

  it('gives up on endless 429 with RESOURCE_EXHAUSTED after the attempt budget', async () => {
    env.proxy.rules.push({ name: '429', match: () => true, action: { respond: 429, headers: { 'retry-after': '0' }, body: errBody('TOOMANYREQUESTS') } });
    const err = await failure(store('faults/ratelimit').resolve('seed'));
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(env.proxy.log.length).toBe(RETRY.maxAttempts);
  });

  it('restarts an upload after a 503 on its PUT', async () => {
    env.proxy.rules.push({ name: '503', match: (r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'), times: 1, action: { respond: 503 } });
    const bytes = uniqueBytes(50_000);
    const d = blobOf(bytes);
    const s = store('faults/outage');
    expect(await s.push(d, bytes)).toEqual({ outcome: 'uploaded', bytes: bytes.length });
    expect(count('POST', '/blobs/uploads/')).toBe(2);
    expect(count('PUT', '/blobs/uploads/')).toBe(2);
    expect(await readStream(await s.fetch(d))).toEqual(bytes);
  });

  it('reports a lasting outage as UNAVAILABLE, never NOT_FOUND', async () => {
    env.proxy.rules.push({ name: '503', match: (r) => r.method === 'GET', action: { respond: 503, body: errBody('UNAVAILABLE') } });
    const err = await failure(store('faults/outage').fetch(blobOf(uniqueBytes(10))));
    expect(err.code).toBe('UNAVAILABLE');
    expect(count('GET', '/blobs/')).toBe(RETRY.maxAttempts);
  });
});

describe('cancellation', () => {
  it('an import or inspect waiting on a registry that never answers the manifest stops when cancelled', async () => {
    await seedManifest('faults/hang');
    env.proxy.rules.push({ name: 'hang', match: (r) => r.path.includes('/manifests/'), action: { hang: true } });
    const spec = { type: 'registry', attrs: { ref: `${env.proxy.host}/faults/hang:seed`, 'registry.insecure': 'true' } };
    for (const run of [(signal: AbortSignal) => importChain([spec], {}, { signal }), (signal: AbortSignal) => inspectCache(spec, {}, { signal })]) {
      const ac = new AbortController();
      const t0 = Date.now();
      setTimeout(() => ac.abort(), 200);
      await expect(run(ac.signal)).rejects.toBeDefined();
      // Without the signal reaching the manifest request it would wait for the 5-minute headers timeout.
      expect(Date.now() - t0).toBeLessThan(3000);
    }
    expect(env.proxy.log.filter((r) => r.fault === 'hang').length).toBe(2);
  });
});

describe('dropped connections', () => {
  const putUpload = (r: { method: string; path: string }) => r.method === 'PUT' && r.path.includes('/blobs/uploads/');
  const getBlob = (digest: string) => (r: { method: string; path: string }) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`);
  /** A blob pushed without faults; the proxy log starts empty after it. */
  const pushed = async (size: number) => {
    const bytes = uniqueBytes(size);
    const d = blobOf(bytes);
    const s = store('faults/resume');
    await s.push(d, bytes);
    env.proxy.log.length = 0;
    return { bytes, d, s, gets: () => env.proxy.log.filter(getBlob(d.digest)) };
  };
  const rangeStart = (r: { range?: string }) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1]);

  it('resumes a download cut mid-body, and a resume cut again, from the byte it reached, with Range requests', async () => {
    const { bytes, d, s, gets: blobGets } = await pushed(3_000_000);
    env.proxy.rules.push({ name: 'cut', match: getBlob(d.digest), times: 2, action: { cutResponseAfterBytes: 1_000_000 } });
    expect((await readStream(await s.fetch(d))).equals(bytes)).toBe(true);
    const gets = blobGets();
    expect(gets.map((r) => r.fault)).toEqual(['cut', 'cut', undefined]);
    expect(gets[0]!.range).toBeUndefined();
    // Each resume starts where the bytes received so far end (the proxy cut each answer after 1 MB).
    const starts = gets.slice(1).map(rangeStart);
    expect(starts[0]).toBeGreaterThan(0);
    expect(starts[0]).toBeLessThanOrEqual(1_000_000);
    expect(starts[1]).toBeGreaterThan(starts[0]!);
    expect(starts[1]).toBeLessThanOrEqual(starts[0]! + 1_000_000);
  });

  it('resumes a read that started at an offset, keeping the bytes exact', async () => {
    const { bytes, d, s, gets: blobGets } = await pushed(2_500_000);
    env.proxy.rules.push({ name: 'cut', match: getBlob(d.digest), times: 1, action: { cutResponseAfterBytes: 700_000 } });
    expect((await readStream(await s.fetch(d, { offset: 300_000 }))).equals(bytes.subarray(300_000))).toBe(true);
    const gets = blobGets();
    expect(gets[0]!.range).toBe('bytes=300000-');
    expect(rangeStart(gets[1]!)).toBeGreaterThan(300_000);
  });

  it('gives up with UNAVAILABLE when attempts in a row make no progress', async () => {
    const { d, s, gets } = await pushed(200_000);
    env.proxy.rules.push({ name: 'cut', match: getBlob(d.digest), action: { cutResponseAfterBytes: 0 } });
    const err = await failure(s.fetch(d).then(readStream));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/broke off at byte 0 of 200000/);
    expect(gets().length).toBe(RETRY.maxAttempts);
  });

  it('restarts a monolithic upload cut mid-body when the content can be reopened', async () => {
    env.proxy.rules.push({ name: 'reset', match: putUpload, times: 1, action: { resetAfterBytes: 64 << 10 } });
    const size = 1 << 20;
    const open = generated(size, 11);
    const { digest } = await digestOfStream(open());
    const d = { mediaType: MT.ociLayerGzip, digest, size };
    const s = store('faults/reset');
    expect(await s.push(d, async () => open())).toEqual({ outcome: 'uploaded', bytes: size });
    expect(count('PUT', '/blobs/uploads/')).toBe(2);
    expect(await digestOfStream(await s.fetch(d))).toEqual({ digest, size });
  });

  it('fails a cut upload of a one-shot stream as not restartable', async () => {
    env.proxy.rules.push({ name: 'reset', match: putUpload, times: 1, action: { resetAfterBytes: 64 << 10 } });
    const size = 1 << 20;
    const open = generated(size, 12);
    const { digest } = await digestOfStream(open());
    const err = await failure(store('faults/reset').push({ mediaType: MT.ociLayerGzip, digest, size }, open()));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.reason).toBe('not-restartable');
    expect(count('PUT', '/blobs/uploads/')).toBe(1);
  });

  it('resumes a chunked upload where the registry stopped, even from a one-shot stream', async () => {
    let patches = 0;
    env.proxy.rules.push({
      name: 'reset-second-patch',
      match: (r) => r.method === 'PATCH' && ++patches === 2,
      action: { resetAfterBytes: 1 << 20 },
    });
    const size = 11 << 20;
    const open = generated(size, 13);
    const { digest } = await digestOfStream(open());
    const d = { mediaType: MT.ociLayerGzip, digest, size };
    const s = store('faults/chunked', { chunkSize: 5 << 20 });
    expect(await s.push(d, open())).toEqual({ outcome: 'uploaded', bytes: size });
    expect(count('POST', '/blobs/uploads/')).toBe(1); // resumed, not restarted
    expect(count('GET', '/blobs/uploads/')).toBe(1); // one status query
    expect(count('PATCH', '/blobs/uploads/')).toBe(4);
    expect(await digestOfStream(await s.fetch(d))).toEqual({ digest, size });
  });
});

describe('auth failures fail fast', () => {
  it('stops a basic-auth 401 loop after one re-authentication', async () => {
    env.proxy.rules.push({
      name: '401',
      match: () => true,
      action: { respond: 401, headers: { 'www-authenticate': 'Basic realm="faults"' }, body: errBody('UNAUTHORIZED') },
    });
    const s = store('faults/auth', { credentials: { username: 'u', password: 'p' } });
    expect((await failure(s.resolve('x'))).code).toBe('UNAUTHENTICATED');
    expect(env.proxy.log.length).toBe(2);
  });

  it('stops a bearer 401 loop after one fresh token', async () => {
    const ts = await startTokenServer({ service: 'svc', issuer: 'iss', users: { u: 'p' } });
    try {
      env.proxy.rules.push({
        name: '401',
        match: () => true,
        action: {
          respond: 401,
          headers: { 'www-authenticate': `Bearer realm="${ts.realm}",service="svc",scope="repository:faults/auth:pull"` },
          body: errBody('UNAUTHORIZED'),
        },
      });
      const s = store('faults/auth', { credentials: { username: 'u', password: 'p' } });
      expect((await failure(s.resolve('x'))).code).toBe('UNAUTHENTICATED');
      expect(env.proxy.log.length).toBe(2);
      expect(ts.requests.length).toBe(1);
      expect((await failure(s.resolve('y'))).code).toBe('UNAUTHENTICATED');
      expect(env.proxy.log.length).toBe(4);
      expect(ts.requests.length).toBe(3);
    } finally {
      await ts.stop();
    }
  });

  it('turns insufficient_scope with credentials into PERMISSION_DENIED', async () => {
    const ts = await startTokenServer({ service: 'svc', issuer: 'iss', users: { u: 'p' } });
    try {
      env.proxy.rules.push({
        name: '401-scope',
        match: () => true,
        action: {
          respond: 401,
          headers: { 'www-authenticate': `Bearer realm="${ts.realm}",service="svc",scope="repository:faults/auth:pull",error="insufficient_scope"` },
        },
      });
      const err = await failure(store('faults/auth', { credentials: { username: 'u', password: 'p' } }).resolve('x'));
      expect(err.code).toBe('PERMISSION_DENIED');
      expect(env.proxy.log.length).toBe(2);
    } finally {
      await ts.stop();
    }
  });

  it('does not retry a 403', async () => {
    env.proxy.rules.push({ name: '403', match: () => true, action: { respond: 403, body: errBody('DENIED') } });
    const err = await failure(store('faults/auth').resolve('x'));
    expect(err.code).toBe('PERMISSION_DENIED');
    expect(env.proxy.log.length).toBe(1);
  });
});

describe('lying registries', () => {
  it('answers HEADs right from a server that sends a body after each HEAD answer (HEADs are kept alive)', async () => {
    // Node's http server drops a HEAD body, so a raw socket plays the broken
    // server. The stray bytes are not an answer: the socket is dropped and
    // the next HEAD goes out on a new one (or is retried), never misread.
    let connections = 0;
    const srv = createNetServer((sock) => {
      connections++;
      let buf = '';
      sock.on('error', () => {});
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          const found = head.startsWith('HEAD') && head.includes('/blobs/') && !head.includes('/blobs/' + missing.digest);
          // Content-Length is the blobs' real size (10): a HEAD naming another size is "not there" (blobs.ts).
          sock.write(found ? 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld' : 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}');
        }
      });
    });
    const missing = blobOf(uniqueBytes(10));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const s = new RegistryStore(`${host}/lies/headbody`, { hosts: { [host]: { insecure: true } }, dockerConfig: false, retry: RETRY });
    try {
      for (let i = 0; i < 10; i++) expect(await s.exists(blobOf(uniqueBytes(10)))).toBe(true);
      expect(await s.exists(missing)).toBe(false);
      const many = await Promise.all(Array.from({ length: 20 }, () => s.exists(blobOf(uniqueBytes(10)))));
      expect(many.every(Boolean)).toBe(true);
      expect(connections).toBeGreaterThan(1);
    } finally {
      await s.close();
      await new Promise((resolve) => srv.close(resolve));
    }
  });

  it('catches a wrong Docker-Content-Digest on a manifest', async () => {
    const m = await seedManifest('faults/lies');
    env.proxy.rules.push({
      name: 'bad-digest',
      match: (r) => r.method === 'GET' && r.path.includes('/manifests/'),
      action: { rewrite: (r) => void (r.headers['docker-content-digest'] = blobOf(uniqueBytes(5)).digest) },
    });
    const err = await failure(store('faults/lies').fetch(m.desc));
    expect(err.code).toBe('DATA_LOSS');
  });

  it('catches a tampered manifest body', async () => {
    const m = await seedManifest('faults/lies');
    env.proxy.rules.push({
      name: 'bad-body',
      match: (r) => r.method === 'GET' && r.path.includes('/manifests/'),
      action: { rewrite: (r) => void (r.body[r.body.length - 2] ^= 1) },
    });
    expect((await failure(store('faults/lies').fetch(m.desc))).code).toBe('DATA_LOSS');
  });

  it('resolves by GET when HEAD leaves out Docker-Content-Digest (it is only a SHOULD)', async () => {
    const m = await seedManifest('faults/lies');
    env.proxy.rules.push({
      name: 'no-digest',
      match: (r) => r.method === 'HEAD' && r.path.includes('/manifests/'),
      action: { rewrite: (r) => void delete r.headers['docker-content-digest'] },
    });
    expect(await store('faults/lies').resolve('seed')).toEqual(m.desc);
    expect(count('GET', '/manifests/seed')).toBe(1);
  });

  it('catches a tampered blob body while streaming', async () => {
    const bytes = uniqueBytes(100_000);
    const d = blobOf(bytes);
    await store('faults/lies').push(d, bytes);
    env.proxy.rules.push({
      name: 'flip',
      match: (r) => r.method === 'GET' && r.path.includes('/blobs/sha256'),
      action: { rewrite: (r) => void (r.body[500] ^= 0xff) },
    });
    const stream = await store('faults/lies').fetch(d);
    expect((await failure(readStream(stream))).code).toBe('DATA_LOSS');
  });
});

describe('manifest PUTs racing blob pushes', () => {
  it('retries a spurious MANIFEST_BLOB_UNKNOWN once the referenced blobs check out', async () => {
    const s = store('faults/race');
    const cfg = uniqueBytes(100);
    const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
    await s.push(cfgDesc, cfg);
    env.proxy.rules.push({
      name: 'race',
      match: (r) => r.method === 'PUT' && r.path.includes('/manifests/'),
      times: 1,
      action: { respond: 400, body: errBody('DIGEST_INVALID').replace(']', ',{"code":"MANIFEST_BLOB_UNKNOWN"}]') },
    });
    const m = manifestOf(cfgDesc, []);
    expect((await s.push(m.desc, m.bytes)).outcome).toBe('uploaded');
    expect(count('PUT', '/manifests/')).toBe(2);
  });

  it('names the missing blob when the registry is right', async () => {
    const cfgDesc = blobOf(uniqueBytes(100), MT.buildkitCacheConfig);
    const m = manifestOf(cfgDesc, []);
    const err = await failure(store('faults/race').push(m.desc, m.bytes));
    expect([err.code, err.reason]).toEqual(['FAILED_PRECONDITION', 'manifest-blob-unknown']);
    expect(err.message).toContain(cfgDesc.digest);
    expect(count('PUT', '/manifests/')).toBe(1);
  });
});

describe('redirects', () => {
  it('follows a blob redirect to storage without sending registry credentials there', async () => {
    const bytes = uniqueBytes(30_000);
    const d = blobOf(bytes);
    const seen: (string | undefined)[] = [];
    // Stands in for S3/GCS behind a registry's 307.
    const storage = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.end(bytes);
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    try {
      const port = (storage.address() as AddressInfo).port;
      env.proxy.rules.push({
        name: '307',
        match: (r) => r.method === 'GET' && r.path.includes(`/blobs/${d.digest}`),
        action: { respond: 307, headers: { location: `http://127.0.0.1:${port}/bucket/blob?X-Signature=abc` } },
      });
      // A ready registry token goes out on every registry request.
      const s = store('faults/redirect', { credentials: { registryToken: 'registry-secret' } });
      expect(await readStream(await s.fetch(d))).toEqual(bytes);
      expect(seen).toEqual([undefined]);
    } finally {
      storage.closeAllConnections();
      await new Promise<void>((r) => storage.close(() => r()));
    }
  });
});

describe('transfer limits', () => {
  it('keeps blob uploads per registry within maxConcurrency', async () => {
    env.proxy.trackConcurrency = (r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/');
    const s = store('faults/limit', { maxConcurrency: 2 });
    const blobs = Array.from({ length: 8 }, () => uniqueBytes(512 << 10));
    // Slow sources keep each upload open long enough to overlap.
    const slow = (b: Buffer) => async () =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < b.length; i += 64 << 10) {
            await new Promise((r) => setTimeout(r, 5));
            yield b.subarray(i, i + (64 << 10));
          }
        })(),
        { objectMode: false },
      );
    await Promise.all(blobs.map((b) => s.push(blobOf(b), slow(b))));
    expect(env.proxy.maxConcurrent).toBe(2);
  });
});
