// Every upload's digest is verified by the gateway before the upstream
// commits it, on every upload path and across daemons: a real `bkcache
// serve` (two of them, same secret) in front of a real docker-registry. A
// chunked upload carries the hash of what passed in its sealed location, so
// the daemon that receives the final PUT checks the digest itself; a wrong
// digest is DIGEST_INVALID and the registry holds nothing under any digest.
// A location that no longer matches what the registry holds, or was tampered
// with, is refused and never committed.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayTenants, type GatewayTenants } from './harness/gateway-tenants.js';
import { distAnswer, type DistAnswer } from '../test/gateway/dist-answer.js';
import type { GatewayProcess } from './harness/gateway.js';

let mt: GatewayTenants;
let one: GatewayProcess;
let two: GatewayProcess;
let token = '';

const hash = (alg: 'sha256' | 'sha512', b: Buffer) => `${alg}:${createHash(alg).update(b).digest('hex')}`;

beforeAll(async () => {
  mt = await startGatewayTenants();
  one = mt.gw;
  two = await mt.second();
  token = await mt.mint(['--sub', 'tenant-a']);
});

afterAll(async () => {
  await mt?.stop();
});

async function send(gw: GatewayProcess, pathAndQuery: string, init: { method: string; body?: Buffer; headers?: Record<string, string> }): Promise<DistAnswer & { location: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...init.headers };
  if (init.body) headers['content-type'] = 'application/octet-stream';
  const a = await distAnswer(await fetch(`${gw.url}${pathAndQuery}`, { method: init.method, headers, body: init.body ? new Uint8Array(init.body) : undefined }));
  return { ...a, location: a.headers.get('location') ?? '' };
}

/** A location with `?digest=` added the way clients do (it may already carry a query). */
const withDigest = (loc: string, digest: string) => `${loc}${loc.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;

/** POST on `gw`, then one PATCH per chunk, the daemon of each chosen by `on(i)`; the last location. */
async function chunked(repo: string, chunks: Buffer[], on: (i: number) => GatewayProcess, query = ''): Promise<string> {
  const start = await send(one, `/v2/${repo}/blobs/uploads/${query}`, { method: 'POST' });
  expect(start.status).toBe(202);
  let loc = start.location;
  let off = 0;
  for (const [i, c] of chunks.entries()) {
    const r = await send(on(i), loc, { method: 'PATCH', body: c, headers: { 'content-range': `${off}-${off + c.length - 1}` } });
    expect(r.status, r.body.toString()).toBe(202);
    off += c.length;
    loc = r.location;
  }
  return loc;
}

/** What the registry itself answers for a blob of the upstream repository (the daemon's credentials). */
async function upstreamHead(repo: string, digest: string): Promise<number> {
  const basic = Buffer.from(`${mt.reg.username}:${mt.reg.password}`).toString('base64');
  const res = await fetch(`${mt.reg.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: { authorization: `Basic ${basic}` } });
  return res.status;
}

function split(blob: Buffer, parts: number): Buffer[] {
  const size = Math.ceil(blob.length / parts);
  return Array.from({ length: parts }, (_, i) => blob.subarray(i * size, (i + 1) * size)).filter((b) => b.length);
}

describe('chunked uploads are verified by the gateway, across daemons', () => {
  it('several PATCHes, the second half sent to a second daemon and finished there: 201, and the blob reads back', async () => {
    const repo = 'cache/tenant-a/chunks';
    const blob = randomBytes(3 << 20);
    const digest = hash('sha256', blob);
    const loc = await chunked(repo, split(blob, 4), (i) => (i < 2 ? one : two));
    const put = await send(two, withDigest(loc, digest), { method: 'PUT' });
    expect(put.status, put.body.toString()).toBe(201);
    const back = await send(one, `/v2/${repo}/blobs/${digest}`, { method: 'GET' });
    expect(back.status).toBe(200);
    expect(back.body.equals(blob)).toBe(true);
  });

  it('a PUT with the last chunk as its body, on the second daemon, continues the carried hash', async () => {
    const repo = 'cache/tenant-a/chunks-body';
    const blob = randomBytes(1 << 20);
    const digest = hash('sha256', blob);
    const parts = split(blob, 3);
    const loc = await chunked(repo, parts.slice(0, 2), () => one);
    const put = await send(two, withDigest(loc, digest), { method: 'PUT', body: parts[2]! });
    expect(put.status, put.body.toString()).toBe(201);
    expect(await upstreamHead(repo, digest)).toBe(200);
  });

  it('a PUT whose last body streams without a length (chunked transfer) is appended, then verified before the commit', async () => {
    const blob = randomBytes(600_000);
    const parts = split(blob, 2);
    const streamed = async (repo: string, digest: string) => {
      const loc = await chunked(repo, [parts[0]!], () => one);
      const body = new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(parts[1]!)), c.close()) });
      const res = await fetch(`${two.url}${withDigest(loc, digest)}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body, duplex: 'half' } as RequestInit);
      return [res.status, ((await res.json().catch(() => ({}))) as { errors?: { code: string }[] }).errors?.[0]?.code];
    };
    const wrong = hash('sha256', parts[1]!);
    expect(await streamed('cache/tenant-a/streamed-wrong', wrong)).toEqual([400, 'DIGEST_INVALID']);
    expect(await upstreamHead('cache/tenant-a/streamed-wrong', wrong)).toBe(404);
    expect(await upstreamHead('cache/tenant-a/streamed-wrong', hash('sha256', blob))).toBe(404);
    expect((await streamed('cache/tenant-a/streamed', hash('sha256', blob)))[0]).toBe(201);
    expect(await upstreamHead('cache/tenant-a/streamed', hash('sha256', blob))).toBe(200);
  });

  it('a wrong digest on a PUT without a body: DIGEST_INVALID, the registry holds nothing, the session is over', async () => {
    const repo = 'cache/tenant-a/wrong-nobody';
    const blob = randomBytes(700_000);
    const right = hash('sha256', blob);
    const wrong = hash('sha256', Buffer.concat([blob, Buffer.from('x')]));
    const loc = await chunked(repo, split(blob, 2), (i) => (i === 0 ? one : two));
    const put = await send(two, withDigest(loc, wrong), { method: 'PUT' });
    expect([put.status, put.code]).toEqual([400, 'DIGEST_INVALID']);
    expect(await upstreamHead(repo, wrong)).toBe(404);
    expect(await upstreamHead(repo, right)).toBe(404);
    expect(existsSync(mt.reg.blobPath(wrong))).toBe(false);
    // The upstream session was cancelled: the right digest cannot be slipped in afterwards.
    const again = await send(one, withDigest(loc, right), { method: 'PUT' });
    expect([again.status, again.code]).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
    expect(await upstreamHead(repo, right)).toBe(404);
  });

  it('a wrong digest on a PUT that carries the last chunk: DIGEST_INVALID, the registry holds nothing', async () => {
    const repo = 'cache/tenant-a/wrong-body';
    const blob = randomBytes(900_000);
    const parts = split(blob, 3);
    const wrong = hash('sha256', Buffer.concat([parts[0]!, parts[1]!, Buffer.alloc(parts[2]!.length)]));
    const loc = await chunked(repo, parts.slice(0, 2), (i) => (i === 0 ? one : two));
    const put = await send(two, withDigest(loc, wrong), { method: 'PUT', body: parts[2]! });
    expect([put.status, put.code]).toEqual([400, 'DIGEST_INVALID']);
    expect(await upstreamHead(repo, wrong)).toBe(404);
    expect(await upstreamHead(repo, hash('sha256', blob))).toBe(404);
    expect(existsSync(mt.reg.blobPath(wrong))).toBe(false);
  });

  it('a location older than what the registry holds (a replayed PATCH) is refused; the session goes on verified', async () => {
    const repo = 'cache/tenant-a/stale';
    const blob = randomBytes(400_000);
    const parts = split(blob, 2);
    const start = await send(one, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const first = await send(one, start.location, { method: 'PATCH', body: parts[0]!, headers: { 'content-range': `0-${parts[0]!.length - 1}` } });
    expect(first.status).toBe(202);
    // The same first chunk again through the old location: its state hashed nothing, the registry holds a chunk.
    const replay = await send(two, start.location, { method: 'PATCH', body: parts[0]! });
    expect(replay.status).toBeGreaterThanOrEqual(400);
    expect(['BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN']).toContain(replay.code);
    expect((await send(two, withDigest(start.location, hash('sha256', Buffer.alloc(0))), { method: 'PUT' })).status).toBeGreaterThanOrEqual(400);
    // Nothing moved: the current location still finishes, with the digest of what it holds.
    const done = await send(two, withDigest(first.location, hash('sha256', blob)), { method: 'PUT', body: parts[1]! });
    expect(done.status, done.body.toString()).toBe(201);
    expect((await send(one, `/v2/${repo}/blobs/${hash('sha256', blob)}`, { method: 'GET' })).body.equals(blob)).toBe(true);
  });

  it('a tampered or forged location is an unknown upload, on either daemon', async () => {
    const repo = 'cache/tenant-a/forged';
    const loc = await chunked(repo, [randomBytes(1000)], () => one);
    const sealed = loc.split('/uploads/')[1]!.split('?')[0]!;
    const flipped = loc.replace(sealed, sealed.slice(0, 30) + (sealed[30] === 'A' ? 'B' : 'A') + sealed.slice(31));
    const digest = hash('sha256', Buffer.alloc(0));
    for (const gw of [one, two]) {
      expect((await send(gw, withDigest(flipped, digest), { method: 'PUT' })).code).toBe('BLOB_UPLOAD_UNKNOWN');
      expect((await send(gw, `/v2/${repo}/blobs/uploads/${'A'.repeat(120)}`, { method: 'PATCH', body: Buffer.from('x') })).code).toBe('BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('sha512: chunked with ?digest-algorithm=sha512 is verified; without it the digest cannot be checked and is refused', async () => {
    const blob = randomBytes(500_000);
    const digest = hash('sha512', blob);
    const hinted = await chunked('cache/tenant-a/sha512', split(blob, 2), (i) => (i === 0 ? one : two), '?digest-algorithm=sha512');
    const ok = await send(two, withDigest(hinted, digest), { method: 'PUT' });
    expect(ok.status, ok.body.toString()).toBe(201);
    expect(await upstreamHead('cache/tenant-a/sha512', digest)).toBe(200);
    const wrong = await chunked('cache/tenant-a/sha512-wrong', split(blob, 2), () => one, '?digest-algorithm=sha512');
    expect((await send(two, withDigest(wrong, hash('sha512', Buffer.from('other'))), { method: 'PUT' })).code).toBe('DIGEST_INVALID');
    const unhinted = await chunked('cache/tenant-a/sha512-plain', split(blob, 2), () => one);
    const refused = await send(two, withDigest(unhinted, digest), { method: 'PUT' });
    expect([refused.status, refused.code]).toEqual([400, 'BLOB_UPLOAD_INVALID']);
    expect(await upstreamHead('cache/tenant-a/sha512-plain', digest)).toBe(404);
    expect((await send(one, '/v2/cache/tenant-a/x/blobs/uploads/?digest-algorithm=md5', { method: 'POST' })).code).toBe('DIGEST_INVALID');
  });

  it('one-shot uploads still verify: monolithic POST and a whole-body PUT with a wrong digest leave nothing', async () => {
    const repo = 'cache/tenant-a/oneshot';
    const blob = randomBytes(300_000);
    const wrong = hash('sha256', Buffer.from('not these bytes'));
    expect((await send(one, `/v2/${repo}/blobs/uploads/?digest=${wrong}`, { method: 'POST', body: blob })).code).toBe('DIGEST_INVALID');
    const start = await send(one, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    expect((await send(two, withDigest(start.location, wrong), { method: 'PUT', body: blob })).code).toBe('DIGEST_INVALID');
    expect(await upstreamHead(repo, wrong)).toBe(404);
    expect(await upstreamHead(repo, hash('sha256', blob))).toBe(404);
  });
});
