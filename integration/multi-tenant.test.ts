// The multi-tenant guarantees, end to end: the real `bkcache serve` (auth on,
// two tiers) in front of a real registry that needs credentials only the
// daemon has. Tokens are minted with the real `bkcache token`. Tenant B must
// not read, probe, fetch blobs of, mount from or overwrite tenant A's cache,
// and what B sees when A's cache exists must equal, byte for byte, what it
// sees when nothing exists. Raw gRPC calls keep the whole answer (code,
// details, trailing metadata) for those comparisons.
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type CacheClient } from '../src/client/index.js';
import { digestBytes } from '../src/oci/digest.js';
import { UNAUTHENTICATED_MESSAGE } from '../src/server/access.js';
import { descriptorToWire } from '../src/api/wire.js';
import { grpcTarget, parseAddress } from '../src/api/address.js';
import { cacheProto } from '../src/api/proto.js';
import { synthetic, writeContentStore, type Synthetic } from '../test/client/synthetic.js';
import { runCli } from './harness/cli.js';
import { startDaemon, type DaemonProcess } from './harness/daemon.js';
import type { StartedRegistry } from './harness/registry.js';
import { graphMsgs, linked as linkedIn, RawCalls, spec, start, startMultiTenant, TRANSPORT, type Answer, type MultiTenant } from './harness/tenants.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-mt-data-'));
let mt: MultiTenant;
let reg: StartedRegistry;
let d: DaemonProcess;
let raw: RawCalls;
const tok: Record<'a' | 'b' | 'admin', string> = { a: '', b: '', admin: '' };

const ref = (repo: string, tag = 'latest') => `${reg.host}/${repo}:${tag}`;
const regSpec = (repo: string, tag?: string) => spec(`type=registry,ref=${ref(repo, tag)}`);
const client = (who: keyof typeof tok): CacheClient => connect(d.addr, { token: tok[who] });
const linked = (repo: string, digest: string) => linkedIn(reg, repo, digest);
const PERMISSION_DENIED = grpc.status.PERMISSION_DENIED;

beforeAll(async () => {
  mt = await startMultiTenant();
  ({ reg, d } = mt);
  raw = new RawCalls(d.addr);
  // A: the default grants from the tiers, ES256. B: explicit grants (with a local directory), HS256.
  tok.a = await mt.mint(['--sub', 'tenant-a']);
  tok.b = await mt.mint(['--sub', 'tenant-b', '--alg', 'HS256', '--access', `${reg.host}/cache/global/**=pull`, '--access', `${reg.host}/cache/tenant-b/**=pull,push`, '--access', 'local/cache/tenant-b/**=pull,push']);
  tok.admin = await mt.mint(['--sub', 'ops', '--admin', '--access', '**=pull,push']);
});

afterAll(async () => {
  raw?.close();
  if (mt) expect((await mt.stop()).code).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

describe('tokens', () => {
  it('expired, forged, alg=none, tampered, wrong-audience, malformed and missing tokens: one UNAUTHENTICATED answer, on every RPC', async () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const hs = (claims: object, secret = mt.secret, header: object = { alg: 'HS256', typ: 'JWT' }) => {
      const input = `${b64(header)}.${b64(claims)}`;
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    };
    const now = Math.floor(Date.now() / 1000);
    const good = { sub: 'tenant-b', aud: mt.audience, exp: now + 600, access: [{ repository: '**', actions: ['pull', 'push'] }] };
    const [h, , s] = tok.b.split('.');
    const bad: Record<string, string | undefined> = {
      missing: undefined,
      expired: hs({ ...good, exp: now - 3600 }),
      'not yet valid': hs({ ...good, nbf: now + 3600 }),
      'forged (another secret)': hs(good, randomBytes(32).toString('hex')),
      'forged (another EC key)': (() => {
        const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const input = `${b64({ alg: 'ES256' })}.${b64(good)}`;
        return `${input}.${sign('sha256', Buffer.from(input), { key: other.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      })(),
      'alg=none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good)}.`,
      tampered: `${h}.${b64(good)}.${s}`, // B's real signature over broader grants
      'wrong audience': hs({ ...good, aud: 'some-other-service' }),
      malformed: 'not-a-jwt',
      'basic auth': 'Basic dGVuYW50LWI6cGFzcw==',
    };
    const layer = synthetic([1000]).layers[0]!;
    const calls: Record<string, (t?: string) => Promise<Answer>> = {
      Import: (t) => raw.unary('Import', { sources: [regSpec('cache/tenant-b/x')] }, t),
      Inspect: (t) => raw.unary('Inspect', { source: regSpec('cache/tenant-b/x') }, t),
      Copy: (t) => raw.unary('Copy', { sources: [regSpec('cache/tenant-b/x')], target: regSpec('cache/tenant-b/y') }, t),
      FetchBlob: (t) => raw.fetch({ source: regSpec('cache/tenant-b/x'), descriptor: descriptorToWire(layer), digest: '', offset: 0 }, t),
      Export: (t) => raw.export(t, [start(`type=registry,ref=${ref('cache/tenant-b/x')}`)]),
    };
    const expected: Answer = { code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_MESSAGE, metadata: { 'bkcache-reason': 'unauthenticated', ...TRANSPORT } };
    for (const [rpc, call] of Object.entries(calls)) {
      for (const [why, t] of Object.entries(bad)) {
        const { need: _n, ...got } = (await call(t)) as Answer & { need?: unknown };
        expect(got, `${rpc} with a ${why} token`).toEqual(expected);
      }
    }
    // The operator's log says why; the token itself is never in it. (A call's line may reach the log just after its
    // answer reaches the caller, so the count is waited for.)
    const deniedLines = () => d.logs.filter((l) => l.code === 'UNAUTHENTICATED');
    await expect.poll(() => deniedLines().length, { timeout: 5000 }).toBe(Object.keys(calls).length * Object.keys(bad).length);
    const denied = deniedLines();
    expect(new Set(denied.map((l) => l.auth_error))).toEqual(new Set(['missing', 'expired', 'not yet valid', 'bad signature', 'algorithm "none" is not accepted', 'wrong audience', 'not a compact JWS', 'authorization is not a bearer token']));
    const logText = JSON.stringify(d.logs);
    for (const t of Object.values(bad)) {
      if (!t) continue;
      expect(logText).not.toContain(t);
      // The payload, where a token's grants are: not even part of it.
      const payload = t.split('.')[1];
      if (payload && payload.length > 20) expect(logText).not.toContain(payload.slice(0, 30));
    }
  });
});

describe('tenant B against tenant A', () => {
  let a: Synthetic;
  let aManifest: string;
  beforeAll(async () => {
    a = synthetic([40_000, 50_000, 60_000], 'tenant-a');
    const res = await client('a').export('type=tier,name=app', a.graph, a.provider);
    aManifest = res.manifest!.digest;
    // A local cache of A's, written by an admin (A's default grants are registry-only).
    await client('admin').export('type=local,dest=cache/tenant-a/app', a.graph, a.provider);
  });

  it("cannot import, inspect or copy A's cache; 'exists' and 'no such ref' answer byte for byte the same", async () => {
    const existing = [`type=registry,ref=${ref('cache/tenant-a/app')}`, 'type=local,src=cache/tenant-a/app', 'type=local,src=cache/tenant-b/../tenant-a/app'];
    const absent = [`type=registry,ref=${ref('cache/tenant-a/nothing')}`, `type=registry,ref=${ref('cache/tenant-zz/app')}`, 'type=local,src=cache/tenant-a/nothing', 'type=local,src=/nonexistent/cache'];
    const probes: Record<string, (s: string) => Promise<Answer>> = {
      Import: (s) => raw.unary('Import', { sources: [spec(s)] }, tok.b),
      'Import, second in a chain': (s) => raw.unary('Import', { sources: [regSpec('cache/tenant-b/none'), spec(s)], ignore_error: true }, tok.b),
      Inspect: (s) => raw.unary('Inspect', { source: spec(s), include_graph: true }, tok.b),
      'Copy from': (s) => raw.unary('Copy', { sources: [spec(s)], target: regSpec('cache/tenant-b/copied') }, tok.b),
      'FetchBlob, manifest digest': (s) => raw.fetch({ source: spec(s), digest: aManifest, offset: 0 }, tok.b),
      'FetchBlob, layer descriptor': (s) => raw.fetch({ source: spec(s), descriptor: descriptorToWire(a.layers[0]!), digest: '', offset: 0 }, tok.b),
    };
    for (const [what, probe] of Object.entries(probes)) {
      const answers = [];
      for (const s of [...existing, ...absent]) answers.push(await probe(s));
      expect(answers[0]!.code, what).toBe(PERMISSION_DENIED);
      for (const [i, x] of answers.entries()) expect(x, `${what}: ${[...existing, ...absent][i]}`).toEqual(answers[0]);
    }
    // A, with its own token, reads the same ref fine.
    expect((await client('a').inspect(`type=registry,ref=${ref('cache/tenant-a/app')}`)).manifest.digest).toBe(aManifest);
  });

  it('gets the same answer for one of A\'s refs before and after A creates it', async () => {
    const probe = () => raw.unary('Inspect', { source: regSpec('cache/tenant-a/later') }, tok.b);
    const before = await probe();
    const s = synthetic([3_000], 'later');
    await client('a').export(`type=registry,ref=${ref('cache/tenant-a/later')}`, s.graph, s.provider);
    expect(await probe()).toEqual(before);
    expect(before.code).toBe(PERMISSION_DENIED);
  });

  it("cannot fetch A's blobs through its own cache: the same NOT_FOUND as a blob that exists nowhere", async () => {
    const b = synthetic([20_000], 'tenant-b');
    await client('b').export('type=tier,name=app', b.graph, b.provider);
    const own = spec('type=tier,name=app'); // B's tier chain: B's cache, then global
    const direct = regSpec('cache/tenant-b/app');
    const fake = { ...a.layers[0]!, digest: digestBytes(randomBytes(16)) };
    const probes: object[] = [];
    for (const source of [own, direct]) {
      probes.push(
        { source, digest: a.layers[0]!.digest, offset: 0 },
        { source, descriptor: descriptorToWire(a.layers[1]!), digest: '', offset: 0 },
        { source, digest: aManifest, offset: 0 },
        { source, descriptor: { media_type: 'application/vnd.oci.image.manifest.v1+json', digest: aManifest, size: 500, annotations: {}, urls: [] }, digest: '', offset: 0 },
        { source, digest: fake.digest, offset: 0 },
        { source, descriptor: descriptorToWire(fake), digest: '', offset: 0 },
      );
    }
    const answers = await Promise.all(probes.map((p) => raw.fetch(p, tok.b)));
    expect(answers[0]).toEqual({ code: grpc.status.NOT_FOUND, details: 'blob not found in the source cache', metadata: { 'bkcache-reason': 'unknown-blob', ...TRANSPORT } });
    for (const x of answers) expect(x).toEqual(answers[0]);
    // Its own blobs it reads, through the tier spec or the ref.
    for (const source of [own, direct]) expect((await raw.fetch({ source, digest: b.layers[0]!.digest, offset: 0 }, tok.b)).bytes?.equals(b.blobs.get(b.layers[0]!.digest)!)).toBe(true);
  });

  it("cannot mount A's blobs, nor learn from need_blobs that they exist", async () => {
    // A graph made of A's layer descriptors (digests B may have guessed), and one made of digests nobody has.
    const fresh = synthetic([40_000, 50_000, 60_000], 'never-stored');
    const target = `type=registry,ref=${ref('cache/tenant-b/stolen')}`;
    const withA = await raw.export(tok.b, graphMsgs(target, a.graph), () => []);
    const withNothing = await raw.export(tok.b, graphMsgs(target, fresh.graph), () => []);
    expect(withA.need).toHaveLength(a.blobs.size);
    expect(new Set(withA.need)).toEqual(new Set(a.blobs.keys()));
    expect(withNothing.need).toHaveLength(fresh.blobs.size);
    // The same through B's tier target, whose global sibling is consulted for mounts: A's blobs are not there.
    const viaTier = await raw.export(tok.b, graphMsgs('type=tier,name=stolen', a.graph), () => []);
    expect(new Set(viaTier.need)).toEqual(new Set(a.blobs.keys()));
    // Sending bytes that are not A's fails; nothing of A's got linked into B's repositories.
    const forged = await raw.export(tok.b, graphMsgs(target, a.graph), (need) =>
      need.flatMap((dg) => [
        { msg: 'blob_chunk' as const, blob_chunk: { digest: dg, offset: 0, data: randomBytes(a.blobs.get(dg)!.length) } },
        { msg: 'blob_done' as const, blob_done: { digest: dg } },
      ]),
    );
    expect(forged.code).toBe(grpc.status.DATA_LOSS);
    for (const dg of a.blobs.keys()) {
      expect(await linked('cache/tenant-b/stolen', dg)).toBe(false);
      expect(await linked('cache/tenant-a/app', dg)).toBe(true);
    }
    expect((await raw.unary('Import', { sources: [regSpec('cache/tenant-b/stolen')] }, tok.b)).value?.hit).toBe(false);
  });

  it("cannot overwrite A's cache; its own exports land in its own tier", async () => {
    const b = synthetic([5_000], 'overwrite');
    for (const target of [ref('cache/tenant-a/app'), ref('cache/tenant-a/brand-new')]) {
      const r = await raw.export(tok.b, graphMsgs(`type=registry,ref=${target}`, b.graph), () => []);
      expect(r).toEqual({ code: PERMISSION_DENIED, details: 'permission denied: the token does not grant push on the export target', metadata: { 'bkcache-reason': 'permission-denied', ...TRANSPORT }, need: undefined });
    }
    const copy = await raw.unary('Copy', { sources: [spec('type=tier,name=app')], target: regSpec('cache/tenant-a/app') }, tok.b);
    expect([copy.code, copy.details]).toEqual([PERMISSION_DENIED, 'permission denied: the token does not grant push on the target']);
    const local = await raw.export(tok.b, graphMsgs('type=local,dest=cache/tenant-b/../tenant-a/app', b.graph), () => []);
    expect(local.code).toBe(PERMISSION_DENIED);
    expect((await client('a').inspect(`type=registry,ref=${ref('cache/tenant-a/app')}`)).manifest.digest).toBe(aManifest);
    expect((await client('a').import(['type=tier,name=app'])).hit?.manifest.digest).toBe(aManifest);
  });
});

describe('the authorized place is the written place (issue 10)', () => {
  let a: Synthetic;
  let aLatest: string;
  const INVALID = grpc.status.INVALID_ARGUMENT;
  beforeAll(async () => {
    a = synthetic([6_000, 7_000], 'place-a');
    aLatest = (await client('admin').export('type=local,dest=cache/tenant-a/place', a.graph, a.provider)).manifest!.digest;
  });
  const aStillLatest = async () => expect((await client('admin').inspect('type=local,src=cache/tenant-a/place')).manifest.digest).toBe(aLatest);

  it('src= on an export target is a usage error, whatever it names; A\'s cache is untouched', async () => {
    const b = synthetic([5_000], 'place-b');
    for (const target of [
      'type=local,src=cache/tenant-b/app,dest=cache/tenant-a/place',
      'type=local,dest=cache/tenant-a/place,src=cache/tenant-b/app',
      'type=local,src=cache/tenant-b/app,dest=/tmp/bkcache-mt-escape',
      'type=local,src=cache/tenant-b/app',
    ]) {
      const r = await raw.export(tok.b, graphMsgs(target, b.graph), (need) => need.flatMap((dg) => [
        { msg: 'blob_chunk' as const, blob_chunk: { digest: dg, offset: 0, data: b.blobs.get(dg)! } },
        { msg: 'blob_done' as const, blob_done: { digest: dg } },
      ]));
      expect([r.code, r.details], target).toEqual([INVALID, 'type=local export target takes dest=DIR, not src=']);
    }
    // The structured form, with the keys in any case, is held to the same rule.
    const structured = await raw.export(tok.b, [{ msg: 'start', start: { target: { spec: '', type: 'local', attrs: { SRC: 'cache/tenant-b/app', Dest: 'cache/tenant-a/place' } } } }]);
    expect(structured.code).toBe(INVALID);
    // Copy's target: the same.
    for (const target of ['type=local,src=cache/tenant-b/app,dest=cache/tenant-a/place', 'type=local,src=cache/tenant-b/app']) {
      const c = await raw.unary('Copy', { sources: [spec('type=tier,name=app')], target: spec(target) }, tok.b);
      expect([c.code, c.details], target).toEqual([INVALID, 'type=local export target takes dest=DIR, not src=']);
    }
    // dest= on an import source is the same usage error.
    const imp = await raw.unary('Import', { sources: [spec('type=local,dest=cache/tenant-b/app')] }, tok.b);
    expect([imp.code, imp.details]).toEqual([INVALID, 'type=local import source takes src=DIR, not dest=']);
    await aStillLatest();
    expect(existsSync('/tmp/bkcache-mt-escape')).toBe(false);
  });

  it('the audit line records the place actually written', async () => {
    const b = synthetic([3_000], 'place-audit');
    await client('b').export('type=local,dest=cache/tenant-b/audited', b.graph, b.provider);
    await client('b').copy(['type=local,src=cache/tenant-b/audited'], 'type=local,dest=cache/tenant-b/copied');
    const lines = d.logs.filter((l) => l.msg === 'call' && l.tenant === 'tenant-b' && l.code === 'OK' && (l.method === 'Export' || l.method === 'Copy'));
    expect(lines.find((l) => l.method === 'Export' && l.wrote === 'local/cache/tenant-b/audited')?.refs).toEqual(['push local/cache/tenant-b/audited']);
    expect(lines.find((l) => l.method === 'Copy')?.wrote).toBe('local/cache/tenant-b/copied');
  });

  it("errors name the tenant's own spec, never the daemon's root or errno text; the log keeps the detail", async () => {
    mkdirSync(path.join(d.root, 'cache/tenant-b'), { recursive: true });
    writeFileSync(path.join(d.root, 'cache/tenant-b/afile'), 'not a directory');
    const b = synthetic([2_000], 'place-err');
    const answers = [
      await raw.export(tok.b, graphMsgs('type=local,dest=cache/tenant-b/afile', b.graph), () => []),
      await raw.export(tok.b, graphMsgs('type=local,dest=cache/tenant-b/afile/deeper', b.graph), () => []),
      await raw.unary('Inspect', { source: spec('type=local,src=cache/tenant-b/afile/deeper') }, tok.b),
      await raw.unary('Copy', { sources: [spec('type=local,src=cache/tenant-b/audited')], target: spec('type=local,dest=cache/tenant-b/afile') }, tok.b),
    ];
    // Import answers OK with the source in `misses` (a fallback chain moves on); the miss's words are held to the same rule.
    const imp = await raw.unary('Import', { sources: [spec('type=local,src=cache/tenant-b/afile')] }, tok.b);
    expect(imp.code).toBe(0);
    const misses = (imp.value?.misses ?? []) as { message: string; spec: string }[];
    expect(misses).toHaveLength(1);
    const texts = [...answers.map((x) => ({ code: x.code, details: x.details })), { code: -1, details: `${misses[0]!.spec} ${misses[0]!.message}` }];
    for (const x of texts) {
      expect(x.code, x.details).not.toBe(0);
      expect(x.code, x.details).not.toBe(grpc.status.INTERNAL);
      expect(x.details).not.toContain(d.dir);
      expect(x.details).not.toMatch(/\bE[A-Z]{3,}\b|\/tmp\//);
      expect(x.details).toContain('cache/tenant-b/afile');
    }
    const logged = JSON.stringify(d.logs.filter((l) => l.tenant === 'tenant-b' && String(l.error ?? '').includes('afile')));
    expect(logged).toContain(d.root);
  });
});

describe('slots are shared fairly between tenants (issue 10)', () => {
  it('a tenant holding exports that sent start and went silent does not hold every slot: another tenant exports at once', async () => {
    const C = cacheProto().ctor;
    const silent = new C(grpcTarget(parseAddress(d.addr)), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Export(md: grpc.Metadata): grpc.ClientDuplexStream<object, object>;
    };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${tok.a}`);
    // As many silent exports as the daemon has export slots (4): before, they took them all.
    const calls = Array.from({ length: 4 }, () => silent.Export(md));
    const ended = calls.map((c) => new Promise<number>((resolve) => c.on('error', (e: grpc.ServiceError) => resolve(e.code)).on('status', (st: grpc.StatusObject) => resolve(st.code))));
    calls.forEach((c, i) => c.write(start(`type=registry,ref=${ref(`cache/tenant-a/silent-${i}`)}`)));
    await new Promise((r) => setTimeout(r, 500)); // let them take what they can
    const b = synthetic([4_000], 'fair');
    const res = await client('b').export(`type=registry,ref=${ref('cache/tenant-b/fair')}`, b.graph, b.provider, { timeoutMs: 30_000 });
    expect(res.manifest).toBeDefined();
    for (const c of calls) c.cancel();
    expect(await Promise.all(ended)).toEqual(calls.map(() => grpc.status.CANCELLED));
    silent.close();
  });
});

describe('two tiers', () => {
  let base: Synthetic;

  it('a tenant cannot write the global cache; an admin token can', async () => {
    base = synthetic([30_000, 80_000, 20_000, 10_000, 5_000, 7_000], 'base');
    const denied = { code: PERMISSION_DENIED, details: 'permission denied: the token does not grant push on the export target', metadata: { 'bkcache-reason': 'permission-denied', ...TRANSPORT }, need: undefined };
    expect(await raw.export(tok.a, graphMsgs('type=tier,name=web,tier=global', base.graph), () => [])).toEqual(denied);
    expect(await raw.export(tok.a, graphMsgs(`type=registry,ref=${ref('cache/global/web')}`, base.graph), () => [])).toEqual(denied);
    expect((await raw.unary('Copy', { sources: [spec('type=tier,name=app')], target: spec('type=tier,name=web,tier=global') }, tok.a)).code).toBe(PERMISSION_DENIED);
    // The CLI will not mint a tenant token that can push to the global tier, unless --admin.
    const refused = await runCli(['token', '--config', mt.cfgFile, '--sub', 'tenant-a', '--access', `${reg.host}/cache/*/**=pull,push`]);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining('push on the global tier')]);
    expect((await runCli(['token', '--config', mt.cfgFile, '--sub', 'global'])).code).toBe(2);

    const res = await client('admin').export('type=tier,name=web,tier=global', base.graph, base.provider);
    expect(res.target).toBe(ref('cache/global/web'));
    expect((await client('a').inspect('type=tier,name=web,tier=global')).manifest.digest).toBe(res.manifest!.digest);
  });

  it('a tenant build imports global + tenant, exports tenant, and its second run hits the tenant cache', async () => {
    const a = client('a');
    // First run: the tenant tier is empty, so the global cache answers.
    const first = await a.import(['type=tier,name=web']);
    expect(first.hit?.index).toBe(0);
    expect(first.misses).toEqual([expect.objectContaining({ index: 0, code: 'NOT_FOUND', spec: expect.stringContaining('cache/tenant-a/web') })]);
    expect(first.graph.marshal()).toEqual(base.graph.marshal());

    // The build adds a step on top of what it imported, with one new layer.
    const g = first.graph;
    const parent = g.nodes.find((n) => n.result && n.result.layers.length === 3)!;
    const data = randomBytes(25_000);
    const newLayer = { ...base.layers[0]!, digest: digestBytes(data), size: data.length, annotations: { 'containerd.io/uncompressed': digestBytes('uncompressed-new') } };
    const step = g.add(digestBytes('tenant-a:new-step'));
    step.linkFrom(parent, 0, '');
    step.addResult('2024-05-02T00:00:00Z', [...parent.result!.layers, newLayer]);
    const blobs = new Map(base.blobs).set(newLayer.digest, data);
    const opened: string[] = [];
    const exported = await a.export('type=tier,name=web', g, {
      open: (desc) => {
        opened.push(desc.digest);
        return Readable.from([blobs.get(desc.digest)!]);
      },
    });
    expect(exported.target).toBe(ref('cache/tenant-a/web'));
    // Only the new layer crossed the wire; the global ones were mounted inside the registry.
    expect(exported.requested).toEqual([newLayer.digest]);
    expect(opened).toEqual([newLayer.digest]);
    expect(exported.stats).toMatchObject({ uploaded: 1, mounted: base.blobs.size });

    // Second run: the tenant tier hits, nothing missed, and it holds the new step.
    const second = await a.import(['type=tier,name=web']);
    expect(second.hit?.manifest.digest).toBe(exported.manifest!.digest);
    expect(second.misses).toEqual([]);
    expect(second.graph.nodes.map((n) => n.digest)).toContain(digestBytes('tenant-a:new-step'));
    expect((await a.readBlob('type=tier,name=web', newLayer.digest)).equals(data)).toBe(true);
    expect((await a.readBlob('type=tier,name=web', base.layers[1]!.digest)).equals(base.blobs.get(base.layers[1]!.digest)!)).toBe(true);
    // The global cache is as the admin left it; tenant B's chain for "web" still sees only global.
    expect((await a.inspect('type=tier,name=web,tier=global')).summary.records).toBe(base.graph.marshal().config.records.length);
    const b = await client('b').import(['type=tier,name=web']);
    expect(b.graph.marshal()).toEqual(base.graph.marshal());
  });

  it('a tenant that may not pull the global tier is not told what it holds: its tier export asks for every blob', async () => {
    const c = await mt.mint(['--sub', 'tenant-c', '--access', `${reg.host}/cache/tenant-c/**=pull,push`]);
    const d2 = await mt.mint(['--sub', 'tenant-d']); // default grants: pull on the global tier
    const withoutPull = await raw.export(c, graphMsgs('type=tier,name=web', base.graph), () => []);
    expect(new Set(withoutPull.need)).toEqual(new Set(base.blobs.keys()));
    // The control: a tenant that may pull the global tier is asked for none (they would be mounted).
    expect((await raw.export(d2, graphMsgs('type=tier,name=web', base.graph), () => [])).need).toEqual([]);
    // C cannot read the global tier, nor a chain that includes it; its own tier alone it may read.
    expect((await raw.unary('Import', { sources: [spec('type=tier,name=web')] }, c)).code).toBe(PERMISSION_DENIED);
    expect((await raw.unary('Import', { sources: [spec('type=tier,name=web,tier=tenant')] }, c)).value?.hit).toBe(false);
  });
});

describe('local paths', () => {
  it('paths outside the root and content_store_dir are refused for tenants, allowed for an admin', async () => {
    const s = synthetic([4_000], 'local');
    const store = path.join(dir, 'content');
    writeContentStore(store, s.blobs);
    for (const dest of ['/tmp/bkcache-mt-escape', '../escape', 'cache/tenant-bx/app', 'cache', '.']) {
      expect((await raw.export(tok.b, graphMsgs(`type=local,dest=${dest}`, s.graph), () => [])).code, dest).toBe(PERMISSION_DENIED);
    }
    const cs = await raw.export(tok.b, graphMsgs('type=local,dest=cache/tenant-b/app', s.graph, store), () => []);
    expect([cs.code, cs.details]).toEqual([PERMISSION_DENIED, 'permission denied: the token does not grant pull on content_store_dir']);
    expect((await client('b').export('type=local,dest=cache/tenant-b/app', s.graph, s.provider)).manifest).toBeDefined();
    expect((await client('b').import(['type=local,src=cache/tenant-b/app'])).hit).toBeDefined();
    const admin = await client('admin').export(`type=local,dest=${path.join(dir, 'outside')}`, s.graph, { contentStoreDir: store });
    expect(admin.requested).toEqual([]);
  });
});

describe('audit log and auth modes', () => {
  it('one line per call with tenant, method, refs, code and bytes; never a token or the registry password', async () => {
    const calls = d.logs.filter((l) => l.msg === 'call');
    expect(calls.length).toBeGreaterThan(50);
    for (const l of calls) {
      expect(l).toHaveProperty('method');
      expect(l).toHaveProperty('code');
      expect(l).toHaveProperty('tenant');
      expect(Array.isArray(l.refs)).toBe(true);
      expect(typeof l.bytes).toBe('number');
    }
    const fetched = calls.find((l) => l.method === 'FetchBlob' && l.code === 'OK' && l.tenant === 'tenant-a');
    expect(fetched?.bytes).toBeGreaterThan(0);
    expect(fetched?.refs).toEqual([`pull ${reg.host}/cache/tenant-a/web`, `pull ${reg.host}/cache/global/web`]);
    const refusedOverwrite = calls.find((l) => l.method === 'Export' && l.code === 'PERMISSION_DENIED' && l.tenant === 'tenant-b');
    expect(refusedOverwrite?.denied).toMatch(/^push /);
    const text = d.logs.map((l) => JSON.stringify(l)).join('\n');
    for (const t of mt.minted) for (const part of t.split('.')) expect(text).not.toContain(part);
    expect(text).not.toContain(reg.password!);
    expect(d.logs.some((l) => String(l.msg).startsWith('auth enabled'))).toBe(true);
  });

  it('without auth: unix socket only (and it says so); TCP needs --insecure-no-auth-tcp', async () => {
    const unix = await startDaemon();
    expect(unix.logs.some((l) => String(l.msg).startsWith('auth disabled: serving unix sockets only'))).toBe(true);
    await unix.stop();
    unix.cleanup();
    await expect(startDaemon({ args: ['--addr', 'tcp://127.0.0.1:0'] })).rejects.toThrow(/refusing to listen on tcp:\/\/127\.0\.0\.1:0 without auth/);
    const tcp = await startDaemon({ args: ['--addr', 'tcp://127.0.0.1:0', '--insecure-no-auth-tcp'] });
    expect(tcp.logs.some((l) => String(l.msg).startsWith('auth disabled: serving TCP without authentication'))).toBe(true);
    await tcp.stop();
    tcp.cleanup();
  });
});
