// The gateway in front of the embedded store (`upstream: local`), two
// gateways on one root and one secret (two daemons sharing a volume):
// every upload path verifies its digest before the blob is published,
// whichever gateway finishes it; DELETE removes a manifest's index entries
// and blob together, a blob only when no manifest of the layout names it,
// and the answers for "not yours" and "absent" are the same bytes.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway/server.js';
import { signToken } from '../../src/server/auth/token.js';
import { LocalStore } from '../../src/store/local/index.js';
import type { Logger } from '../../src/server/log.js';
import { tempDir } from '../tmp.js';
import { distAnswer, type DistAnswer } from './dist-answer.js';

const quiet: Logger = { debug: () => {}, info: () => {}, error: () => {} };
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const SECRET = Buffer.from('0123456789abcdef0123456789abcdef-local-gw');
const MT = 'application/vnd.oci.image.manifest.v1+json';
const IT = 'application/vnd.oci.image.index.v1+json';

let root: string;
const gws: Gateway[] = [];
const bases: string[] = [];
const tokens = { a: '', b: '' };

function mint(sub: string, pattern: string): string {
  const access = [{ repository: pattern, actions: ['pull', 'push'] }];
  return signToken({ sub, aud: 'bkcache', exp: Math.floor(Date.now() / 1000) + 3600, access } as Parameters<typeof signToken>[0], { alg: 'HS256', secret: SECRET });
}

beforeAll(async () => {
  root = tempDir('bkcache-gw-local-');
  for (let i = 0; i < 2; i++) {
    const g = new Gateway(
      { listen: 'tcp://127.0.0.1:0', upstream: 'local', imageManifestOnly: false },
      { auth: { keys: { hmacSecret: SECRET }, verify: { audience: 'bkcache' } }, backend: {}, root, log: quiet, allowUnauthenticatedTcp: false, hmacSecret: SECRET },
    );
    gws.push(g);
    bases.push(`http://${(await g.start()).slice('tcp://'.length)}`);
  }
  tokens.a = mint('tenant-a', 'local/a/**');
  tokens.b = mint('tenant-b', 'local/b/**');
});
afterAll(async () => {
  for (const g of gws) await g.close();
});

async function req(p: string, init: RequestInit & { gw?: number; as?: 'a' | 'b' } = {}): Promise<DistAnswer> {
  const headers = { authorization: `Bearer ${tokens[init.as ?? 'a']}`, ...(init.headers as Record<string, string>) };
  return distAnswer(await fetch(bases[init.gw ?? 0] + p, { ...init, headers }));
}

/** Status, headers but date, and body: what must be byte-identical between two refusals. */
async function whole(p: string, init: RequestInit & { gw?: number; as?: 'a' | 'b' }): Promise<string> {
  const r = await req(p, init);
  const h: string[] = [];
  r.headers.forEach((v, k) => k !== 'date' && h.push(`${k}: ${v}`));
  return `${r.status}\n${h.join('\n')}\n${r.body.toString('hex')}`;
}

async function pushBlob(repo: string, data: Buffer): Promise<string> {
  const r = await req(`/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, { method: 'POST', body: new Uint8Array(data) });
  expect(r.status).toBe(201);
  return sha(data);
}

async function pushManifest(repo: string, ref: string, doc: object, mediaType = MT): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const r = await req(`/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': mediaType } });
  expect(r.status, r.body.toString()).toBe(201);
  return sha(bytes);
}

async function image(repo: string, tag: string, seed: string): Promise<{ manifest: string; config: string; layer: string; size: number }> {
  const cfg = Buffer.from(`{"seed":"${seed}"}`);
  const layer = Buffer.from(`layer of ${seed}`);
  const config = await pushBlob(repo, cfg);
  const l = await pushBlob(repo, layer);
  const doc = { schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l, size: layer.length }] };
  const manifest = await pushManifest(repo, tag, doc);
  return { manifest, config, layer: l, size: Buffer.from(JSON.stringify(doc)).length };
}

const indexEntries = (repo: string) => (JSON.parse(readFileSync(path.join(root, repo, 'index.json'), 'utf8')).manifests ?? []) as { digest: string }[];

describe('uploads on the embedded store, across gateways', () => {
  const data = Buffer.from('chunk-'.repeat(5000));

  async function begin(repo: string, first: Buffer): Promise<string> {
    const start = await req(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const p = await req(start.headers.get('location')!, { method: 'PATCH', body: new Uint8Array(first), headers: { 'content-range': `0-${first.length - 1}` } });
    expect(p.status).toBe(202);
    return p.headers.get('location')!;
  }

  it('begun on one, continued and finished on the other: 201 and the blob reads back', async () => {
    const loc = await begin('a/up', data.subarray(0, 10_000));
    const p2 = await req(loc, { method: 'PATCH', gw: 1, body: new Uint8Array(data.subarray(10_000, 20_000)), headers: { 'content-range': `10000-19999` } });
    expect(p2.status).toBe(202);
    const put = await req(`${p2.headers.get('location')}?digest=${sha(data)}`, { method: 'PUT', gw: 1, body: new Uint8Array(data.subarray(20_000)) });
    expect(put.status).toBe(201);
    expect((await req(`/v2/a/up/blobs/${sha(data)}`)).body.equals(data)).toBe(true);
  });

  it('a wrong digest, with or without a last body, on the other gateway: DIGEST_INVALID, nothing published, no ingest file left', async () => {
    const wrong = sha('not the data');
    for (const last of [undefined, data.subarray(20_000)]) {
      const first = data.subarray(0, 20_000);
      const loc = await begin('a/wrong', first);
      const put = await req(`${loc}?digest=${wrong}`, { method: 'PUT', gw: 1, ...(last ? { body: new Uint8Array(last) } : {}) });
      expect([put.status, put.code]).toEqual([400, 'DIGEST_INVALID']);
      for (const d of [wrong, sha(first), sha(data)]) expect((await req(`/v2/a/wrong/blobs/${d}`, { method: 'HEAD' })).status).toBe(404);
      expect(existsSync(path.join(root, 'a/wrong/blobs/sha256', wrong.slice(7)))).toBe(false);
      expect(readdirSync(path.join(root, '.gateway-uploads')).some((f) => loc.includes(f))).toBe(false);
    }
  });
});

describe('DELETE on the embedded store', () => {
  it('a manifest by digest: every tag naming it and its blob go; what it named stays until prune', async () => {
    const img = await image('a/del', 'v1', 'one');
    const bytes = (await req(`/v2/a/del/manifests/v1`, { headers: { accept: MT } })).body;
    await pushManifest('a/del', 'v2', JSON.parse(bytes.toString()));
    const keep = await image('a/del', 'other', 'two');
    const del = await req(`/v2/a/del/manifests/${img.manifest}`, { method: 'DELETE', gw: 1 });
    expect(del.status).toBe(202);
    for (const ref of ['v1', 'v2', img.manifest]) expect((await req(`/v2/a/del/manifests/${ref}`, { headers: { accept: MT } })).code).toBe('MANIFEST_UNKNOWN');
    expect(indexEntries('a/del').map((e) => e.digest)).toEqual([keep.manifest]);
    expect(JSON.parse((await req('/v2/a/del/tags/list')).body.toString()).tags).toEqual(['other']);
    expect((await req(`/v2/a/del/blobs/${img.config}`, { method: 'HEAD' })).status).toBe(200);
    expect((await req(`/v2/a/del/manifests/${img.manifest}`, { method: 'DELETE' })).code).toBe('MANIFEST_UNKNOWN');
    // By tag, or a digest that names a plain blob: not a manifest delete.
    expect((await req(`/v2/a/del/manifests/other`, { method: 'DELETE' })).code).toBe('UNSUPPORTED');
    expect((await req(`/v2/a/del/manifests/${keep.layer}`, { method: 'DELETE' })).code).toBe('MANIFEST_UNKNOWN');
    expect((await req(`/v2/a/del/blobs/${keep.layer}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('a manifest pushed by digest only (no tag) is deleted too', async () => {
    const cfg = Buffer.from('{"untagged":true}');
    const config = await pushBlob('a/bydigest', cfg);
    const doc = { schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: cfg.length }, layers: [] };
    const d = sha(Buffer.from(JSON.stringify(doc)));
    await pushManifest('a/bydigest', d, doc);
    expect((await req(`/v2/a/bydigest/manifests/${d}`, { method: 'DELETE' })).status).toBe(202);
    expect((await req(`/v2/a/bydigest/manifests/${d}`, { headers: { accept: MT } })).code).toBe('MANIFEST_UNKNOWN');
  });

  it('nothing anything still names: a blob of a kept manifest, or a manifest an index names, is refused with DENIED', async () => {
    const img = await image('a/named', 'v1', 'named');
    const child = { mediaType: MT, digest: img.manifest, size: img.size };
    const idx = await pushManifest('a/named', 'idx', { schemaVersion: 2, mediaType: IT, manifests: [child] }, IT);
    for (const p of [`blobs/${img.layer}`, `blobs/${img.config}`, `blobs/${img.manifest}`, `manifests/${img.manifest}`]) {
      const r = await req(`/v2/a/named/${p}`, { method: 'DELETE' });
      expect([r.status, r.code], p).toEqual([403, 'DENIED']);
      expect(JSON.parse(r.body.toString()).errors[0].detail).toMatch(/still names it; nothing was deleted/);
    }
    expect(indexEntries('a/named')).toHaveLength(2);
    expect((await req(`/v2/a/named/manifests/v1`, { headers: { accept: MT } })).status).toBe(200);
    // Once nothing names them: the index, then its child, then the child's blobs.
    expect((await req(`/v2/a/named/manifests/${idx}`, { method: 'DELETE' })).status).toBe(202);
    expect((await req(`/v2/a/named/manifests/${img.manifest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await req(`/v2/a/named/blobs/${img.layer}`, { method: 'DELETE' })).status).toBe(202);
    expect((await req(`/v2/a/named/blobs/${img.layer}`, { method: 'HEAD' })).status).toBe(404);
    expect((await req(`/v2/a/named/blobs/${img.layer}`, { method: 'DELETE' })).code).toBe('BLOB_UNKNOWN');
  });

  it('a blob a live export has claimed (its lease, as prune honours it) is refused until the export ends', async () => {
    const spare = await pushBlob('a/leased', Buffer.from('pushed by an export that has not tagged yet'));
    const lease = await new LocalStore(path.join(root, 'a/leased')).lease();
    await lease.add(spare);
    try {
      expect((await req(`/v2/a/leased/blobs/${spare}`, { method: 'DELETE' })).code).toBe('DENIED');
    } finally {
      await lease.release();
    }
    expect((await req(`/v2/a/leased/blobs/${spare}`, { method: 'DELETE' })).status).toBe(202);
  });

  it('a layout that cannot be walked refuses a blob delete (UNSUPPORTED) and deletes nothing', async () => {
    const img = await image('a/broken', 'v1', 'broken');
    const spare = await pushBlob('a/broken', Buffer.from('a blob no manifest names'));
    // The manifest's bytes no longer match its digest: what it names can no longer be known.
    writeFileSync(path.join(root, 'a/broken/blobs/sha256', img.manifest.slice(7)), '{"schemaVersion":2,"layers":[]}');
    const r = await req(`/v2/a/broken/blobs/${spare}`, { method: 'DELETE' });
    expect([r.status, r.code]).toEqual([405, 'UNSUPPORTED']);
    expect((await req(`/v2/a/broken/blobs/${spare}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('no oracle: "exists but not yours" and "absent" are the same bytes, for manifests and blobs', async () => {
    const img = await image('a/secret', 'v1', 'secret');
    const absent = sha('absent');
    for (const kind of ['manifests', 'blobs']) {
      const there = kind === 'manifests' ? img.manifest : img.layer;
      const mine = await whole(`/v2/a/secret/${kind}/${there}`, { method: 'DELETE', as: 'b' });
      expect(mine).toBe(await whole(`/v2/a/secret/${kind}/${absent}`, { method: 'DELETE', as: 'b' }));
      // A repository that does not exist differs only by its name, which the challenge echoes.
      expect(mine).toBe((await whole(`/v2/a/nothing/${kind}/${absent}`, { method: 'DELETE', as: 'b' })).replace('a/nothing:', 'a/secret:'));
      // In B's own repository, a digest A holds is as absent as any other.
      expect(await whole(`/v2/b/own/${kind}/${there}`, { method: 'DELETE', as: 'b' })).toBe(await whole(`/v2/b/own/${kind}/${absent}`, { method: 'DELETE', as: 'b' }));
    }
    expect((await req(`/v2/a/secret/manifests/v1`, { headers: { accept: MT } })).status).toBe(200);
  });
});
