// Replays what a real BuildKit v0.12.5 sent to a registry (../shared/traces,
// recorded request by request with bodies) through the gateway, in front of
// a real docker-registry and in front of the embedded store, and expects the
// answers BuildKit got from distribution itself: statuses, digests, media
// types, lengths and body hashes. Upload locations are the gateway's own:
// a recorded PUT goes to the Location the gateway gave for its POST.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES } from '../test/fixtures.js';
import { tempDir } from '../test/tmp.js';
import { insecureHosts, startGateway, startGatewayFromConfig, type GatewayProcess } from './harness/gateway.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

const TRACES = path.join(path.dirname(FIXTURES), 'traces', 'buildkit-v0.12.5');

interface Exchange {
  id: string;
  method: string;
  url: string;
  reqHeaders: Record<string, string>;
  reqBody?: { bytes: number; sha256: string; file: string };
  status: number;
  resHeaders: Record<string, string>;
  resBody?: { bytes: number; sha256: string; file?: string };
}

function load(name: string): Exchange[] {
  const lines = readFileSync(path.join(TRACES, name, 'trace.jsonl'), 'utf8').split('\n').filter(Boolean);
  // Requests in the order they arrived: an upload's POST comes before its PUT.
  return lines.map((l) => JSON.parse(l) as Exchange).sort((a, b) => a.id.localeCompare(b.id));
}

const SCENARIOS = readdirSync(TRACES).filter((d) => /^\d-/.test(d)).sort();
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** Replays one recorded build against `base`; returns a line per exchange that answered differently. */
async function replay(base: string, name: string, opts: { only?: (e: Exchange) => boolean } = {}): Promise<string[]> {
  const uploads = new Map<string, string>(); // recorded upload path → the gateway's Location
  const diffs: string[] = [];
  for (const e of load(name)) {
    if (opts.only && !opts.only(e)) continue;
    const rec = new URL(e.url, 'http://recorded');
    let target = rec.pathname + rec.search;
    if (/\/blobs\/uploads\/.+/.test(rec.pathname)) {
      const ours = uploads.get(rec.pathname);
      if (!ours) throw new Error(`${name} ${e.id}: upload ${rec.pathname} was never started`);
      const q = new URLSearchParams(rec.search);
      target = `${ours}?digest=${encodeURIComponent(q.get('digest') ?? '')}`;
    }
    const headers: Record<string, string> = {};
    for (const k of ['accept', 'content-type', 'range', 'user-agent']) if (e.reqHeaders[k]) headers[k] = e.reqHeaders[k]!;
    const body = e.reqBody ? readFileSync(path.join(TRACES, name, e.reqBody.file)) : undefined;
    const res = await fetch(base + target, { method: e.method, headers, body });
    const got = Buffer.from(await res.arrayBuffer());
    const where = `${name} ${e.id} ${e.method} ${rec.pathname.replace(/uploads\/.+/, 'uploads/…')}`;
    if (res.status !== e.status) {
      diffs.push(`${where}: status ${res.status}, BuildKit got ${e.status}: ${got.toString().slice(0, 200)}`);
      continue;
    }
    if (e.method === 'POST' && res.status === 202) {
      const recorded = new URL(e.resHeaders.location!, 'http://recorded').pathname;
      uploads.set(recorded, new URL(res.headers.get('location')!, base).pathname);
    }
    for (const h of ['docker-content-digest', 'content-type', 'content-length']) {
      const want = e.resHeaders[h];
      if (want === undefined || res.status >= 400) continue;
      if (h === 'content-length' && e.method !== 'HEAD' && e.method !== 'GET') continue;
      if (res.headers.get(h) !== want) diffs.push(`${where}: ${h} ${res.headers.get(h)}, BuildKit got ${want}`);
    }
    if (e.resBody && e.method === 'GET' && res.status < 300 && sha(got) !== e.resBody.sha256) diffs.push(`${where}: body hashes to ${sha(got)}, BuildKit got ${e.resBody.sha256}`);
  }
  return diffs;
}

describe.each(['docker-registry', 'embedded store'])('BuildKit traces through the gateway in front of the %s', (kind) => {
  let reg: StartedRegistry | undefined;
  let gw: GatewayProcess;

  beforeAll(async () => {
    if (kind === 'docker-registry') {
      reg = await startRegistry();
      const dir = tempDir('bkcache-gw-traces-');
      writeFileSync(path.join(dir, 'cfg.yaml'), insecureHosts(reg.host));
      gw = await startGateway({ upstream: `${reg.host}/replayed`, args: ['--config', path.join(dir, 'cfg.yaml')] });
    } else gw = await startGateway({ upstream: 'local' });
  });
  afterAll(async () => {
    await gw?.d.stop();
    gw?.d.cleanup();
    await reg?.stop();
  });

  // The scenarios build on each other (3 re-exports 1, 4 and 5 import 2 and 1), as they were recorded.
  for (const name of SCENARIOS) {
    it(name, async () => {
      expect(await replay(gw.url, name)).toEqual([]);
    });
  }
});

describe('BuildKit traces through an imageManifestOnly gateway', () => {
  let reg: StartedRegistry;
  let gw: GatewayProcess;

  beforeAll(async () => {
    reg = await startRegistry();
    const dir = tempDir('bkcache-gw-traces-im-');
    writeFileSync(path.join(dir, 'cfg.yaml'), insecureHosts(reg.host) + `gateway:\n  listen: tcp://127.0.0.1:0\n  upstream: ${reg.host}\n  imageManifestOnly: true\n`);
    gw = await startGatewayFromConfig(path.join(dir, 'cfg.yaml'));
  });
  afterAll(async () => {
    await gw?.d.stop();
    gw?.d.cleanup();
    await reg?.stop();
  });

  it('an index export gets the digest of the index it sent, and the tag then resolves to the image manifest', async () => {
    expect(await replay(gw.url, '1-export-index-max')).toEqual([]);
    const res = await fetch(`${reg.url}/v2/trace/cache/manifests/index`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
    const doc = JSON.parse(Buffer.from(await res.arrayBuffer()).toString());
    expect(doc.config.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    // BuildKit's import of the converted cache: the manifest by tag and by digest, then the config.
    const head = await fetch(`${gw.url}/v2/trace/cache/manifests/index`, { method: 'HEAD', headers: { accept: '*/*' } });
    expect(head.status).toBe(200);
    const cfg = await fetch(`${gw.url}/v2/trace/cache/blobs/${doc.config.digest}`);
    expect(sha(Buffer.from(await cfg.arrayBuffer()))).toBe(doc.config.digest);
  });
});
