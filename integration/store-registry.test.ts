// The registry backend against a real distribution 2.8 registry: the shared
// conformance suite once per auth mode, then what only registries have
// (mounts, auth flows, chunked uploads, deletes, interop with skopeo).
import { execFileSync } from 'node:child_process';
import dc from 'node:diagnostics_channel';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BkError } from '../src/errors.js';
import { MT } from '../src/oci/media-types.js';
import { RegistryStore, type RegistryStoreOptions } from '../src/store/registry/index.js';
import { blobOf, describeStoreConformance, digestOfStream, generated, manifestOf, readStream, uniqueBytes } from '../test/store/conformance.js';
import { startRegistry, type RegistryAuth, type StartedRegistry } from './harness/registry.js';
import { tempDir } from '../test/tmp.js';

const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 10_000 };

function storeFor(reg: StartedRegistry, repo: string, extra: RegistryStoreOptions = {}): RegistryStore {
  return new RegistryStore(`${reg.host}/${repo}`, {
    hosts: { [reg.host]: { insecure: true } },
    credentials: reg.username ? { username: reg.username, password: reg.password } : undefined,
    dockerConfig: false,
    retry: FAST_RETRY,
    ...extra,
  });
}

async function codeOf(p: Promise<unknown>): Promise<BkError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BkError);
  return err as BkError;
}

for (const auth of ['none', 'htpasswd', 'token'] as RegistryAuth[]) {
  describe(`registry auth=${auth}`, () => {
    let reg: StartedRegistry;
    beforeAll(async () => {
      reg = await startRegistry({ auth });
    });
    afterAll(async () => {
      await reg?.stop();
    });

    describeStoreConformance(`registry (${auth})`, async () => {
      const store = storeFor(reg, `conformance/${auth}`);
      return { store, cleanup: () => store.close() };
    });

    it('mounts a blob from another repository (201) and pushes via mount', async () => {
      const a = storeFor(reg, 'mount/source');
      const b = storeFor(reg, 'mount/target');
      try {
        const bytes = uniqueBytes(4000);
        const d = blobOf(bytes);
        await a.push(d, bytes);
        expect(await b.exists(d)).toBe(false);
        expect(await b.mount(d, 'mount/source')).toBe(true);
        expect(await b.exists(d)).toBe(true);
        expect(await readStream(await b.fetch(d))).toEqual(bytes);

        const more = uniqueBytes(1000);
        const dm = blobOf(more);
        await a.push(dm, more);
        expect(await b.push(dm, more, { mountFrom: 'mount/source' })).toEqual({ outcome: 'mounted', bytes: 0 });
        // Unknown blob: the registry answers 202 (upload instead); mount() says false.
        expect(await b.mount(blobOf(uniqueBytes(10)), 'mount/source')).toBe(false);
        // push with a mount that the registry declines uploads through the session it opened.
        const fresh = uniqueBytes(500);
        expect((await b.push(blobOf(fresh), fresh, { mountFrom: 'mount/source' })).outcome).toBe('uploaded');
      } finally {
        await a.close();
        await b.close();
      }
    });

    if (auth !== 'none') {
      it('fails with UNAUTHENTICATED on wrong credentials, without leaking them', async () => {
        const secret = 'wrong-secret-value-42';
        const s = storeFor(reg, 'auth/wrong', { credentials: { username: reg.username, password: secret } });
        try {
          const err = await codeOf(s.push(blobOf(uniqueBytes(10)), uniqueBytes(10)));
          expect(err.code).toBe('UNAUTHENTICATED');
          expect(`${err.message} ${String(err.cause ?? '')} ${s.location}`).not.toContain(secret);
          expect((await codeOf(s.resolve('latest'))).code).toBe('UNAUTHENTICATED');
        } finally {
          await s.close();
        }
      });

      it('reads credentials from a Docker config.json', async () => {
        const dir = tempDir('bkcache-dockercfg-');
        try {
          const auths = { [`http://${reg.host}`]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } };
          writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths }));
          const s = storeFor(reg, 'auth/config-file', { credentials: undefined, dockerConfig: join(dir, 'config.json') });
          const bytes = uniqueBytes(100);
          expect((await s.push(blobOf(bytes), bytes)).outcome).toBe('uploaded');
          await s.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('runs a docker-credential helper named by credsStore', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'bkcache-helper-'));
        const oldPath = process.env.PATH;
        try {
          const helper = join(dir, 'docker-credential-bkcachetest');
          const out = JSON.stringify({ ServerURL: reg.host, Username: reg.username, Secret: reg.password });
          writeFileSync(helper, `#!/bin/sh\nread host\n[ "$host" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '${out}'\n`);
          chmodSync(helper, 0o755);
          writeFileSync(join(dir, 'config.json'), JSON.stringify({ credsStore: 'bkcachetest' }));
          process.env.PATH = `${dir}:${oldPath}`;
          const s = storeFor(reg, 'auth/helper', { credentials: undefined, dockerConfig: join(dir, 'config.json') });
          const bytes = uniqueBytes(100);
          expect((await s.push(blobOf(bytes), bytes)).outcome).toBe('uploaded');
          await s.close();
        } finally {
          process.env.PATH = oldPath;
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }

    if (auth === 'token') {
      it('uses anonymous tokens: pull works, push is refused', async () => {
        const anon = storeFor(reg, 'auth/anon', { credentials: undefined });
        try {
          expect((await codeOf(anon.resolve('nope'))).code).toBe('NOT_FOUND');
          const err = await codeOf(anon.push(blobOf(uniqueBytes(10)), uniqueBytes(10)));
          expect(err.code).toBe('UNAUTHENTICATED');
        } finally {
          await anon.close();
        }
      });

      it('exchanges an identity token with the OAuth2 refresh_token grant', async () => {
        const before = reg.tokenServer!.requests.length;
        const s = storeFor(reg, 'auth/identity', { credentials: { identityToken: reg.identityToken } });
        const bytes = uniqueBytes(100);
        expect((await s.push(blobOf(bytes), bytes)).outcome).toBe('uploaded');
        await s.close();
        const grants = reg.tokenServer!.requests.slice(before).map((r) => r.grant);
        expect(grants).toContain('refresh_token');
        expect(grants).not.toContain('basic');
      });

      it('falls back to the OAuth2 password grant when GET is not served', async () => {
        const ts = reg.tokenServer!;
        const before = ts.requests.length;
        ts.getDisabled = true;
        try {
          const s = storeFor(reg, 'auth/post-fallback');
          const bytes = uniqueBytes(100);
          expect((await s.push(blobOf(bytes), bytes)).outcome).toBe('uploaded');
          await s.close();
        } finally {
          ts.getDisabled = false;
        }
        const seen = ts.requests.slice(before).map((r) => `${r.method}:${r.grant}`);
        expect(seen).toContain('GET:rejected');
        expect(seen).toContain('POST:password');
      });

      it('caches tokens instead of fetching one per request', async () => {
        const ts = reg.tokenServer!;
        const s = storeFor(reg, 'auth/cache');
        const before = ts.requests.length;
        for (let i = 0; i < 5; i++) {
          const b = uniqueBytes(50);
          await s.push(blobOf(b), b);
        }
        await s.close();
        // One pull,push token serves all five HEAD+POST+PUT sequences.
        expect(ts.requests.length - before).toBeLessThanOrEqual(2);
      });
    }
  });
}

describe('registry features beyond the conformance suite', () => {
  let reg: StartedRegistry;
  let noDelete: StartedRegistry;
  beforeAll(async () => {
    [reg, noDelete] = await Promise.all([startRegistry(), startRegistry({ deleteEnabled: false })]);
  });
  afterAll(async () => {
    await Promise.all([reg?.stop(), noDelete?.stop()]);
  });

  it('uploads in chunks (PATCH) when chunkSize is set', async () => {
    const s = storeFor(reg, 'chunked/blobs', { chunkSize: 1 });
    try {
      const size = 12 * 1024 * 1024 + 123; // three PATCHes at the 5 MiB floor
      const open = generated(size, 77);
      const { digest } = await digestOfStream(open());
      const d = { mediaType: MT.ociLayerGzip, digest, size };
      expect(await s.push(d, open)).toEqual({ outcome: 'uploaded', bytes: size });
      expect(await digestOfStream(await s.fetch(d))).toEqual({ digest, size });
      // A wrong digest is caught before the last chunk is sent, so nothing lands.
      const bad = { ...d, digest: blobOf(uniqueBytes(5)).digest };
      expect((await codeOf(s.push(bad, open))).code).toBe('DATA_LOSS');
      expect(await s.exists(bad)).toBe(false);
    } finally {
      await s.close();
    }
  });

  it('tags a manifest pushed by another store by fetching it', async () => {
    const a = storeFor(reg, 'tagging/repo');
    const b = storeFor(reg, 'tagging/repo');
    try {
      const cfg = uniqueBytes(64);
      const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
      await a.push(cfgDesc, cfg);
      const m = manifestOf(cfgDesc, []);
      await a.push(m.desc, m.bytes);
      await b.tag(m.desc, 'from-b');
      expect((await a.resolve('from-b')).digest).toBe(m.desc.digest);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('deletes manifests and blobs, and types a registry that refuses deletes', async () => {
    const s = storeFor(reg, 'delete/repo');
    const cfg = uniqueBytes(64);
    const cfgDesc = blobOf(cfg, MT.buildkitCacheConfig);
    await s.push(cfgDesc, cfg);
    const m = manifestOf(cfgDesc, []);
    await s.push(m.desc, m.bytes);
    await s.delete(m.desc);
    expect(await s.exists(m.desc)).toBe(false);
    await s.delete(cfgDesc);
    expect(await s.exists(cfgDesc)).toBe(false);
    expect((await codeOf(s.delete(cfgDesc))).code).toBe('NOT_FOUND');
    await s.close();

    const n = storeFor(noDelete, 'delete/repo');
    await n.push(cfgDesc, cfg);
    const err = await codeOf(n.delete(cfgDesc));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.reason).toBe('delete-unsupported');
    await n.close();
  });

  it('writes manifests skopeo can read', async () => {
    const s = storeFor(reg, 'interop/skopeo');
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const cfgDesc = blobOf(cfg, MT.ociConfig);
    await s.push(cfgDesc, cfg);
    const m = manifestOf(cfgDesc, []);
    await s.push(m.desc, m.bytes);
    await s.tag(m.desc, 'v1');
    await s.close();
    const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/interop/skopeo:v1`]);
    expect(Buffer.from(raw)).toEqual(m.bytes);
  });

  it('keeps connections alive across HEADs: 80 existence checks over the pool\'s sockets', async () => {
    // undici closes a connection after each HEAD unless told not to; verify
    // sends a HEAD per blob, so each would otherwise pay a connect.
    const blobs = Array.from({ length: 40 }, (_, i) => uniqueBytes(100 + i));
    const writer = storeFor(reg, 'keepalive/heads');
    for (const b of blobs.slice(0, 20)) await writer.push(blobOf(b), b);
    await writer.close();
    const s = storeFor(reg, 'keepalive/heads', { http: { connectionsPerHost: 4 } });
    let connections = 0;
    const onConnect = () => connections++;
    dc.subscribe('undici:client:connected', onConnect);
    try {
      for (const [i, b] of blobs.entries()) expect(await s.exists(blobOf(b))).toBe(i < 20);
      const found = await Promise.all(blobs.map((b) => s.exists(blobOf(b))));
      expect(found.filter(Boolean)).toHaveLength(20);
      // 80 HEADs, found and missing, over at most the pool's 4 sockets (one per HEAD without keep-alive).
      expect(connections).toBeGreaterThan(0);
      expect(connections).toBeLessThanOrEqual(4);
    } finally {
      dc.unsubscribe('undici:client:connected', onConnect);
      await s.close();
    }
  });

  it('never answers NOT_FOUND for anything but a miss', async () => {
    // A repository name the registry rejects is INVALID_ARGUMENT, not a miss.
    const s = storeFor(reg, 'ok/repo');
    expect((await codeOf(s.resolve('no-such-tag'))).code).toBe('NOT_FOUND');
    expect((await codeOf(s.resolve('bad tag!'))).code).toBe('INVALID_ARGUMENT');
    await s.close();
  });
});
