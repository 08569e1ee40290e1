// The multi-tenant guarantees on the gateway, end to end: a real `bkcache
// serve` with auth and tiers in front of a registry whose credentials only
// the daemon holds. Tenants log in the Docker way (Basic with their bkcache
// token as password at <gateway>/token) or send their token as Bearer.
// Tenant B cannot read, probe (HEAD, GET, tags, catalog, mount) or overwrite
// tenant A's caches, and every answer B gets is byte for byte the same before
// and after A's cache exists. Also: the token endpoint narrows scopes, tiers
// fall back on reads only, logs hold no token, and an upload begun on one
// daemon is finished on another.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BK } from '../test/fixtures.js';
import { tempDir } from '../test/tmp.js';
import { runCli, runJson } from './harness/cli.js';
import { startGatewayTenants, type GatewayTenants } from './harness/gateway-tenants.js';
import { startGatewayFromConfig } from './harness/gateway.js';

const MANIFEST_A = 'sha256:fd9594f014920522f0287670381ca962943250d50dc096f2c8aab4e030fb4e66';
const CONFIG_A = 'sha256:02404e21dfeca1f6172ff8becf0fe71c80ed565c8fa47772e9ec5fd9adea2dd9';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let mt: GatewayTenants;
let gwUrl: string;
let gwHost: string;
const tok = { a: '', b: '', admin: '' };

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The whole answer but `date` (the wall clock) and, for uploads, the sealed part of `location`. */
async function call(pathAndQuery: string, token: string | undefined, init: RequestInit = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${gwUrl}${pathAndQuery}`, { ...init, headers });
  const body = Buffer.from(await res.arrayBuffer()).toString('utf8');
  const h: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (k === 'date') return;
    h[k] = k === 'location' ? v.replace(/uploads\/[A-Za-z0-9_-]+$/, 'uploads/<sealed>') : v;
  });
  return { status: res.status, headers: h, body };
}

async function login(token: string, scope: string): Promise<{ status: number; token?: string }> {
  const basic = Buffer.from(`anyone:${token}`).toString('base64');
  const res = await fetch(`${gwUrl}/token?service=bkcache-gw&scope=${encodeURIComponent(scope)}`, { headers: { authorization: `Basic ${basic}` } });
  const doc = (await res.json()) as { token?: string };
  return { status: res.status, token: doc.token };
}

/** A Docker config whose credentials for the gateway are `user` / a bkcache token. */
function dockerConfigFor(token: string): string {
  const dir = tempDir('bkcache-gw-dc-');
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [gwHost]: { auth: Buffer.from(`ci:${token}`).toString('base64') } } }));
  return dir;
}

async function copyTo(token: string, ref: string, src = 'registry-imagemanifest-max'): Promise<{ code: number; stderr: string; stdout: string }> {
  return runCli(['copy', '--import-cache', `type=local,src=${path.join(BK, src)}`, '--export-cache', `type=registry,ref=${gwHost}/${ref},registry.insecure=true`, '--format', 'json'], {
    env: { DOCKER_CONFIG: dockerConfigFor(token) },
  });
}

beforeAll(async () => {
  mt = await startGatewayTenants();
  gwUrl = mt.gw.url;
  gwHost = mt.gw.host;
  tok.a = await mt.mint(['--sub', 'tenant-a']);
  tok.b = await mt.mint(['--sub', 'tenant-b']);
  tok.admin = await mt.mint(['--sub', 'ops', '--admin', '--access', `${mt.reg.host}/**=pull,push`]);
});

afterAll(async () => {
  await mt?.stop();
});

describe('identity', () => {
  it('challenges anonymous and bad tokens with one 401 naming the realm and scope', async () => {
    const anon = await call('/v2/cache/tenant-a/app/manifests/main', undefined, { method: 'HEAD' });
    expect(anon.status).toBe(401);
    expect(anon.headers['www-authenticate']).toBe(`Bearer realm="${gwUrl}/token",service="bkcache-gw",scope="repository:cache/tenant-a/app:pull"`);
    for (const bad of ['garbage', tok.a.slice(0, -2) + 'xx', 'bkg1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      expect(await call('/v2/cache/tenant-a/app/manifests/main', bad, { method: 'HEAD' })).toEqual(anon);
    }
    expect((await call('/v2/', undefined)).status).toBe(401);
    expect((await call('/v2/', tok.a)).status).toBe(200);
  });

  it('the token endpoint takes a bkcache token as Basic password and narrows to the scope asked', async () => {
    expect((await login('not-a-token', 'repository:cache/tenant-a/app:pull')).status).toBe(401);
    const t = await login(tok.a, 'repository:cache/tenant-a/app:pull,push repository:cache/tenant-b/app:pull');
    expect(t.status).toBe(200);
    expect(t.token).toMatch(/^bkg1\./);
    // Granted where the bkcache token allows, nothing where it does not.
    expect((await call('/v2/cache/tenant-a/app/tags/list', t.token)).status).toBe(404);
    expect((await call('/v2/cache/tenant-a/other/tags/list', t.token)).status).toBe(401);
    expect((await call('/v2/cache/tenant-b/app/tags/list', t.token)).status).toBe(401);
  });

  it('the OAuth2 POST BuildKit sends (password and refresh_token grants) gets the same narrowed token', async () => {
    const post = async (form: Record<string, string>) => {
      const res = await fetch(`${gwUrl}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
      return { status: res.status, doc: (await res.json()) as { token?: string; access_token?: string; expires_in?: number } };
    };
    const scope = 'repository:cache/tenant-a/app:pull,push';
    const forms: Record<string, string>[] = [
      { grant_type: 'password', client_id: 'buildkit-client', username: 'ci', password: tok.a, scope, service: 'bkcache-gw' },
      { grant_type: 'refresh_token', client_id: 'buildkit-client', refresh_token: tok.a, scope, service: 'bkcache-gw' },
    ];
    for (const form of forms) {
      const r = await post(form);
      expect(r.status).toBe(200);
      expect(r.doc.access_token).toBe(r.doc.token);
      expect(r.doc.expires_in).toBeGreaterThan(0);
      expect((await call('/v2/cache/tenant-a/app/blobs/uploads/', r.doc.token, { method: 'POST' })).status).toBe(202);
    }
    expect((await post({ grant_type: 'password', username: 'ci', password: 'wrong', scope })).status).toBe(401);
  });
});

describe('tenant B against tenant A', () => {
  const probes = (digest: string): [string, string, RequestInit][] => [
    ['HEAD manifest', '/v2/cache/tenant-a/app/manifests/main', { method: 'HEAD', headers: { accept: ACCEPT } }],
    ['GET manifest', '/v2/cache/tenant-a/app/manifests/main', { headers: { accept: ACCEPT } }],
    ['GET manifest by digest', `/v2/cache/tenant-a/app/manifests/${MANIFEST_A}`, {}],
    ['HEAD blob', `/v2/cache/tenant-a/app/blobs/${digest}`, { method: 'HEAD' }],
    ['GET blob', `/v2/cache/tenant-a/app/blobs/${digest}`, {}],
    ['HEAD blob in own repo', `/v2/cache/tenant-b/app/blobs/${digest}`, { method: 'HEAD' }],
    ['GET blob in own repo', `/v2/cache/tenant-b/app/blobs/${digest}`, {}],
    ['tags', '/v2/cache/tenant-a/app/tags/list', {}],
    ['catalog', '/v2/_catalog', {}],
    ['mount', `/v2/cache/tenant-b/app/blobs/uploads/?mount=${digest}&from=cache/tenant-a/app`, { method: 'POST' }],
    ['overwrite', '/v2/cache/tenant-a/app/manifests/main', { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: '{"schemaVersion":2}' }],
  ];

  it('gets the same bytes before and after A pushes, and never reaches A\'s cache', async () => {
    const before: Answer[] = [];
    for (const [, p, init] of probes(CONFIG_A)) before.push(await call(p, tok.b, init));

    const r = await copyTo(tok.a, 'cache/tenant-a/app:main');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).manifest.digest).toBe(MANIFEST_A);
    // A reads its own cache through the gateway.
    expect((await call('/v2/cache/tenant-a/app/manifests/main', tok.a, { method: 'HEAD', headers: { accept: ACCEPT } })).headers['docker-content-digest']).toBe(MANIFEST_A);

    const after: Answer[] = [];
    for (const [, p, init] of probes(CONFIG_A)) after.push(await call(p, tok.b, init));
    probes(CONFIG_A).forEach(([name], i) => expect(after[i], name).toEqual(before[i]));

    expect(after[0]!.status).toBe(401);
    expect(after[5]!.status).toBe(404); // B's own repository does not hold A's blob
    expect(JSON.parse(after[8]!.body).repositories.some((r: string) => r.includes('tenant-a'))).toBe(false);
    expect(after[9]!.status).toBe(202); // no mount: an upload, as for a blob that exists nowhere
    // Nothing moved: A's tag is A's, and B's repository never got the blob.
    expect((await call('/v2/cache/tenant-a/app/manifests/main', tok.a, { method: 'HEAD', headers: { accept: ACCEPT } })).headers['docker-content-digest']).toBe(MANIFEST_A);
    expect((await call(`/v2/cache/tenant-b/app/blobs/${CONFIG_A}`, tok.admin, { method: 'HEAD' })).status).toBe(404);
  });

  it('B cannot push into A\'s repository with bkcache copy', async () => {
    const r = await copyTo(tok.b, 'cache/tenant-a/app:main', 'registry-index-oci-max');
    expect(r.code).not.toBe(0);
    expect((await call('/v2/cache/tenant-a/app/manifests/main', tok.a, { method: 'HEAD', headers: { accept: ACCEPT } })).headers['docker-content-digest']).toBe(MANIFEST_A);
  });

  it('the catalog lists what the caller may pull', async () => {
    const cat = JSON.parse((await call('/v2/_catalog', tok.a)).body).repositories as string[];
    expect(cat).toContain('cache/tenant-a/app');
    expect(cat.every((r) => r.startsWith('cache/tenant-a/') || r.startsWith('cache/global/'))).toBe(true);
  });
});

describe('two tiers', () => {
  it('a tenant tag that misses falls back to the global tier on reads, and pushes never fall through', async () => {
    const r = await copyTo(tok.admin, 'cache/global/shared:main');
    expect(r.code, r.stderr).toBe(0);
    const head = await call('/v2/cache/tenant-b/shared/manifests/main', tok.b, { method: 'HEAD', headers: { accept: ACCEPT } });
    expect(head.status).toBe(200);
    expect(head.headers['bkcache-tier']).toBe('global');
    expect(head.headers['docker-content-digest']).toBe(MANIFEST_A);
    // The blobs the fallen-back manifest names are readable through the tenant repository.
    const blob = await fetch(`${gwUrl}/v2/cache/tenant-b/shared/blobs/${CONFIG_A}`, { headers: { authorization: `Bearer ${tok.b}` } });
    expect('sha256:' + createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('hex')).toBe(CONFIG_A);
    // BuildKit's import path through the gateway: B's tenant cache name resolves to the global cache.
    const summary = await runJson<{ kind: string; records: number }>(
      ['inspect', '--import-cache', `type=registry,ref=${gwHost}/cache/tenant-b/shared:main,registry.insecure=true`, '--format', 'json'],
      { env: { DOCKER_CONFIG: dockerConfigFor(tok.b) } },
    );
    expect(summary).toMatchObject({ kind: 'image-manifest', records: 11 });
    // A tenant cannot write the global tier, and its own push lands in its own tier.
    expect((await copyTo(tok.b, 'cache/global/shared:main', 'registry-index-oci-max')).code).not.toBe(0);
    const mine = await copyTo(tok.b, 'cache/tenant-b/shared:main', 'registry-index-oci-max');
    expect(mine.code, mine.stderr).toBe(0);
    const own = await call('/v2/cache/tenant-b/shared/manifests/main', tok.b, { method: 'HEAD', headers: { accept: ACCEPT } });
    expect(own.headers['bkcache-tier']).toBe('tenant');
    expect((await call('/v2/cache/global/shared/manifests/main', tok.b, { method: 'HEAD', headers: { accept: ACCEPT } })).headers['docker-content-digest']).toBe(MANIFEST_A);
  });
});

describe('stateless uploads', () => {
  const blob = Buffer.from('a blob begun on one daemon and finished on another');
  const digest = 'sha256:' + createHash('sha256').update(blob).digest('hex');

  it('an upload begun on one daemon is finished on a second one', async () => {
    const second = await mt.second();
    const start = await call('/v2/cache/tenant-a/moved/blobs/uploads/', tok.a, { method: 'POST' });
    expect(start.status).toBe(202);
    const loc = (await fetch(`${gwUrl}/v2/cache/tenant-a/moved/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${tok.a}` } })).headers.get('location')!;
    const patch = await fetch(`${gwUrl}${loc}`, { method: 'PATCH', headers: { authorization: `Bearer ${tok.a}`, 'content-type': 'application/octet-stream', 'content-range': `0-19`, 'content-length': '20' }, body: blob.subarray(0, 20) });
    expect(patch.status).toBe(202);
    const next = patch.headers.get('location')!;
    const put = await fetch(`${second.url}${next}&digest=${encodeURIComponent(digest)}`.replace(/\/uploads\/([^?&]+)&/, '/uploads/$1?'), {
      method: 'PUT',
      headers: { authorization: `Bearer ${tok.a}`, 'content-type': 'application/octet-stream', 'content-length': String(blob.length - 20) },
      body: blob.subarray(20),
    });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(digest);
    const back = await fetch(`${second.url}/v2/cache/tenant-a/moved/blobs/${digest}`, { headers: { authorization: `Bearer ${tok.a}` } });
    expect(Buffer.from(await back.arrayBuffer()).equals(blob)).toBe(true);
  });

  it('a sealed location cannot be retargeted: another repository, another tenant, a tampered seal, another secret', async () => {
    const res = await fetch(`${gwUrl}/v2/cache/tenant-a/seal/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${tok.a}` } });
    const loc = res.headers.get('location')!;
    const sealed = loc.split('/uploads/')[1]!;
    const status = (p: string, t: string) => call(p, t).then((a) => [a.status, JSON.parse(a.body || '{}').errors?.[0]?.code]);
    expect(await status(loc, tok.a)).toEqual([204, undefined]);
    expect(await status(`/v2/cache/tenant-a/other/blobs/uploads/${sealed}`, tok.a)).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
    const flipped = sealed.slice(0, 20) + (sealed[20] === 'A' ? 'B' : 'A') + sealed.slice(21);
    expect(await status(`/v2/cache/tenant-a/seal/blobs/uploads/${flipped}`, tok.a)).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
    const adminOnA = await status(loc, tok.admin);
    expect(adminOnA).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
    // A daemon with another secret (same upstream) does not open it.
    const dir = tempDir('bkcache-gw-othersecret-');
    const cfg = path.join(dir, 'other.yaml');
    writeFileSync(path.join(dir, 'gw.secret'), 'x'.repeat(40));
    const { readFileSync } = await import('node:fs');
    writeFileSync(cfg, readFileSync(mt.cfgFile, 'utf8').replace(/hmacSecretFile: secret/, `hmacSecretFile: ${path.join(path.dirname(mt.cfgFile), 'secret')}`).replace(/credentialsFile: docker/, `credentialsFile: ${path.dirname(mt.cfgFile)}/docker`) + `  secretFile: gw.secret\n`);
    const other = await startGatewayFromConfig(cfg);
    try {
      const r = await fetch(`${other.url}${loc}`, { headers: { authorization: `Bearer ${tok.a}` } });
      expect(r.status).toBe(404);
    } finally {
      await other.d.stop();
      other.d.cleanup();
    }
  });
});

describe('operations', () => {
  it('counts gateway requests, bytes and cache-manifest hits and misses per tier on the daemon\'s /metrics', async () => {
    const addr = String(mt.gw.d.logs.find((l) => l.msg === 'listening')?.metrics);
    const text = await (await fetch(`http://${addr}/metrics`)).text();
    expect(text).toMatch(/bkcache_gateway_requests_total\{route="manifest",method="PUT",status="201"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_bytes_total\{direction="received"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_cache_manifests_total\{tier="tenant",result="miss"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_cache_manifests_total\{tier="global",result="hit"\} \d+/);
    expect(text).toMatch(/bkcache_gateway_cache_manifests_total\{tier="tenant",result="hit"\} \d+/);
    // The gRPC surface's own metrics are still there.
    expect(text).toContain('bkcache_requests_total');
  });

  it('logs one line per request with tenant, method, repository, status and bytes, and never a token', async () => {
    const lines = mt.gw.d.logs.filter((l) => l.msg === 'gateway call');
    expect(lines.length).toBeGreaterThan(10);
    const put = lines.find((l) => l.tenant === 'tenant-a' && l.method === 'PUT' && l.route === 'manifest');
    expect(put).toMatchObject({ repository: 'cache/tenant-a/app', status: 201 });
    expect(lines.some((l) => typeof l.bytes === 'number' && (l.bytes as number) > 1000)).toBe(true);
    const text = JSON.stringify(mt.gw.d.logs);
    for (const t of mt.minted) expect(text).not.toContain(t.split('.')[2]);
    expect(text).not.toMatch(/bkg1\.[A-Za-z0-9_-]{20}/);
  });
});
