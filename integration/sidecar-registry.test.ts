// The sidecar exporting to a real registry through the client library,
// checked over plain HTTP and with skopeo; and the import fallback chain when
// the first source fails authentication.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BkError } from '../src/errors.js';
import { connect, type CacheClient } from '../src/client/index.js';
import { synthetic } from '../test/client/synthetic.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
let reg: StartedRegistry;
let locked: StartedRegistry;
let d: DaemonProcess;
let client: CacheClient;

beforeAll(async () => {
  [reg, locked] = await Promise.all([startRegistry(), startRegistry({ auth: 'htpasswd' })]);
  // No credentials for `locked` anywhere the daemon looks.
  d = await startDaemon({ env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } });
  client = connect(d.addr);
});
afterAll(async () => {
  client?.close();
  await d?.stop();
  d?.cleanup();
  await Promise.all([reg?.stop(), locked?.stop()]);
});

const spec = (r: StartedRegistry, repo: string, extra = '') => `type=registry,ref=${r.host}/${repo}:cache,registry.insecure=true${extra}`;

describe('export through the sidecar to a registry', () => {
  for (const shape of ['image-manifest', 'index'] as const) {
    it(`${shape}: the registry holds what BuildKit expects`, async () => {
      const s = synthetic();
      const repo = `solver/${shape}`;
      const res = await client.export(spec(reg, repo, shape === 'index' ? ',image-manifest=false' : ''), s.graph, s.provider);
      const http = await fetch(`${reg.url}/v2/${repo}/manifests/cache`, { headers: { accept: ACCEPT } });
      expect(http.status).toBe(200);
      const bytes = Buffer.from(await http.arrayBuffer());
      const doc = JSON.parse(bytes.toString());
      expect(http.headers.get('docker-content-digest')).toBe(res.manifest!.digest);
      const layers = shape === 'index' ? doc.manifests.slice(0, -1) : doc.layers;
      const config = shape === 'index' ? doc.manifests.at(-1) : doc.config;
      expect(doc.mediaType).toBe(shape === 'index' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json');
      expect(config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
      for (const l of layers) {
        expect(l.mediaType).toMatch(/^application\/vnd\.oci\.image\.layer\.v1\.tar/);
        expect(l.annotations['containerd.io/uncompressed']).toMatch(/^sha256:/);
      }
      const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/${repo}:cache`]);
      expect(raw.equals(bytes)).toBe(true);
    });
  }
});

/** TCP connections process `pid` holds open to `host` ("127.0.0.1:port"), from /proc. */
function connectionsTo(pid: number, host: string): number {
  const port = Number(host.split(':').at(-1));
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec((() => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return ''; // closed meanwhile
      }
    })());
    if (m) inodes.add(m[1]!);
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && parseInt(f[2]!.split(':')[1]!, 16) === port && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}

describe('connections to the registry', () => {
  it('every call closes the stores it opened: no connection to the registry outlives Export, Import, Inspect, FetchBlob or Copy', async () => {
    for (let i = 0; i < 3; i++) {
      const s = synthetic([1000 + i, 2000 + i]);
      await client.export(spec(reg, `conns/x${i}`), s.graph, s.provider);
    }
    const imp = await client.import([spec(reg, 'conns/none'), spec(reg, 'conns/x0')], { verifyBlobs: true });
    await client.inspect(spec(reg, 'conns/x0'), { includeGraph: true });
    await client.readBlob(spec(reg, 'conns/x0'), imp.hit!.manifest.digest);
    await client.copy([spec(reg, 'conns/x0'), spec(reg, 'conns/x1')], spec(reg, 'conns/merged'));
    // Closing is after the answer; give it a moment, far less than the registry client's 30 s keep-alive.
    for (let i = 0; i < 50 && connectionsTo(d.proc.pid!, reg.host) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(connectionsTo(d.proc.pid!, reg.host)).toBe(0);
  });
});

describe('import fallback chain', () => {
  it('an auth failure on the first source fails the call', async () => {
    const s = synthetic();
    await client.export(spec(reg, 'chain/main'), s.graph, s.provider);
    const err = await client.import([spec(locked, 'chain/branch'), spec(reg, 'chain/main')]).catch((e) => e);
    expect(err).toBeInstanceOf(BkError);
    expect((err as BkError).code).toBe('UNAUTHENTICATED');
  });

  it('...unless ignore-error, and then the next source hits', async () => {
    const viaRequest = await client.import([spec(locked, 'chain/branch'), spec(reg, 'chain/main')], { ignoreError: true });
    expect(viaRequest.hit?.index).toBe(1);
    expect(viaRequest.misses[0]).toMatchObject({ index: 0, code: 'UNAUTHENTICATED' });
    const viaSpec = await client.import([spec(locked, 'chain/branch', ',ignore-error=true'), spec(reg, 'chain/main')]);
    expect(viaSpec.hit?.index).toBe(1);
  });

  it('a missing first source falls through to the second', async () => {
    const res = await client.import([spec(reg, 'chain/nothing'), spec(reg, 'chain/main')]);
    expect(res.hit?.index).toBe(1);
    expect(res.misses[0]).toMatchObject({ index: 0, code: 'NOT_FOUND' });
  });
});
