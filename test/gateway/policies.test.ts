import { describe, expect, it } from 'vitest';
import { familyOf, isMemberTag, memberTag, mergeOrder, type FamilyMember } from '../../src/cache/lifecycle/family.js';
import { CacheGraph, type CacheNode } from '../../src/cache/graph.js';
import { buildCacheManifest } from '../../src/cache/export.js';
import { pushCache } from '../../src/cache/transfer.js';
import type { LoadedCache } from '../../src/cache/import.js';
import { parseStats } from '../../src/cli/stats.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import type { Call, GatewayContext } from '../../src/gateway/context.js';
import { parsePolicies, policyFor } from '../../src/gateway/policies/config.js';
import { mergeFamily } from '../../src/gateway/policies/merge.js';
import { MAX_TENANTS, OTHER, PolicyMetrics } from '../../src/gateway/policies/metrics.js';
import { UpstreamRepoStore } from '../../src/gateway/policies/store.js';
import { TAG_RE } from '../../src/gateway/router.js';
import { LocalUpstream } from '../../src/gateway/upstream/local.js';
import { jsonLogger } from '../../src/server/log.js';
import { chainGraph, layer, MemoryBlobs, sha } from '../cache/lifecycle/helpers.js';
import { tempDir } from '../tmp.js';

describe('policies config', () => {
  it('parses policies; the first matching pattern wins', () => {
    const ps = parsePolicies([
      { repositories: 'cache/aged/**', merge: true, maxAge: '14d', maxSize: '20GiB' },
      { repositories: 'cache/**', repairOnRead: true },
    ]);
    expect(ps[0]).toMatchObject({ merge: true, repairOnRead: false, maxAge: 14 * 86_400_000, maxSize: 20 * 1024 ** 3 });
    expect(policyFor(ps, 'cache/aged/app')).toBe(ps[0]);
    expect(policyFor(ps, 'cache/app')).toBe(ps[1]);
    expect(policyFor(ps, 'images/app')).toBeUndefined();
    expect(policyFor(undefined, 'cache/app')).toBeUndefined();
  });

  it('refuses what it does not understand, with the entry it is in', () => {
    expect(() => parsePolicies({})).toThrow(/must be a list/);
    expect(() => parsePolicies([{ repositories: 'cache/**', merge: 'yes' }])).toThrow(/policies\[0\]\.merge/);
    expect(() => parsePolicies([{ repositories: 'cache/**', maxAge: '2 weeks' }])).toThrow(/policies\[0\]\.maxAge/);
    expect(() => parsePolicies([{ repositories: 'cache/**', maxSize: -1 }])).toThrow(/maxSize/);
    expect(() => parsePolicies([{ repositories: 'a/**b' }])).toThrow(/repositories/);
    expect(() => parsePolicies([{ repositories: 'cache/**', typo: true }])).toThrow(/unknown key "typo"/);
    expect(() => parsePolicies(Array(300).fill({ repositories: 'x' }))).toThrow(/at most/);
  });

  it('is part of the gateway section, with the repository label switch off by default', () => {
    const cfg = parseGatewayConfig({ listen: 'tcp://127.0.0.1:0', upstream: 'local', policies: [{ repositories: 'cache/**', merge: true }] }, (p) => p);
    expect(cfg.policies).toHaveLength(1);
    expect(cfg.metricsRepositoryLabel).toBeUndefined();
    expect(() => parseGatewayConfig({ listen: 'x', upstream: 'local', metricsRepositoryLabel: 1 }, (p) => p)).toThrow(/metricsRepositoryLabel/);
  });
});

describe('tag families', () => {
  it('member tags are valid tags, deterministic, distinct per push and per tag', () => {
    const d1 = sha('one');
    const d2 = sha('two');
    const t = memberTag('main', d1);
    expect(t).toMatch(TAG_RE);
    expect(t.length).toBeLessThanOrEqual(128);
    expect(memberTag('main', d1)).toBe(t);
    expect(memberTag('main', d2)).not.toBe(t);
    expect(memberTag('other', d1)).not.toBe(t);
    expect(isMemberTag(t)).toBe(true);
    expect(isMemberTag('main')).toBe(false);
    const tags = ['main', memberTag('main', d2), memberTag('other', d1), t, 'bkm-zz'];
    expect(familyOf(tags, 'main')).toEqual([memberTag('main', d1), memberTag('main', d2)].sort());
  });

  it('orders the newest member first, the tag itself last, equal times by tag', () => {
    const m = (tag: string, hours: number, base = false): FamilyMember => ({
      tag,
      base,
      loaded: {} as LoadedCache,
      graph: chainGraph(1, { start: new Date(Date.UTC(2026, 0, 1) + hours * 3_600_000), prefix: tag }).graph,
    });
    const order = mergeOrder([m('main', 99, true), m('bkm-b', 1), m('bkm-a', 1), m('bkm-c', 5)]).map((x) => x.tag);
    expect(order).toEqual(['bkm-c', 'bkm-a', 'bkm-b', 'main']);
  });
});

describe('mergeFamily on the embedded store', () => {
  const ctxFor = (root: string, policy = parsePolicies([{ repositories: '**', merge: true }])[0]!) => {
    const upstream = new LocalUpstream(root);
    const ctx = { cfg: { listen: 'x', upstream: 'local', imageManifestOnly: false }, upstream, log: jsonLogger('off') } as unknown as GatewayContext;
    return { ctx, upstream, policy, store: new UpstreamRepoStore(upstream, 'cache/app') };
  };

  /** Pushes a graph as a member of `tag`, as the gateway's PUT stores it. */
  async function pushMember(store: UpstreamRepoStore, graph: CacheGraph, blobs: MemoryBlobs, tag: string): Promise<string> {
    const { config, descriptors } = graph.marshal();
    const built = buildCacheManifest(config, descriptors, { imageManifest: true, ociMediatypes: true });
    await pushCache(store, built, blobs);
    await store.tag(built.manifest.desc, memberTag(tag, built.manifest.desc.digest));
    return built.manifest.desc.digest;
  }

  it('the newest push wins a shared key; merging again (with the tag now holding the merge) gives the same digest', async () => {
    const { ctx, upstream, policy, store } = ctxFor(tempDir('bkcache-merge-'));
    const blobs = new MemoryBlobs();
    const a = chainGraph(2, { prefix: 'a-', start: new Date('2026-01-01T00:00:00Z'), blobs });
    const b = chainGraph(2, { prefix: 'b-', start: new Date('2026-02-01T00:00:00Z'), blobs });
    // Both writers hold a result for one shared key, each with its own layer.
    const shared = (g: CacheGraph, name: string, when: string) => {
      const n = g.add(sha('shared')) as CacheNode;
      n.addResult(when, [blobs.add(layer(name))]);
    };
    shared(a.graph, 'shared-a', '2026-01-05T00:00:00Z');
    shared(b.graph, 'shared-b', '2026-02-05T00:00:00Z');
    await pushMember(store, a.graph, blobs, 'main');
    await pushMember(store, b.graph, blobs, 'main');

    const first = await mergeFamily(ctx, 'cache/app', 'main', policy);
    if (!first || first === 'empty') throw new Error('no merge');
    expect(first.members).toBe(2);
    const doc = JSON.parse(first.manifest.bytes.toString('utf8'));
    const names = doc.layers.map((l: { digest: string }) => l.digest);
    expect(names).toContain(layer('shared-b').desc.digest);
    expect(names).not.toContain(layer('shared-a').desc.digest);
    // The tag now names the merge (best effort); a second merge includes it and changes nothing.
    expect((await upstream.getManifest('cache/app', 'main'))?.digest).toBe(first.manifest.digest);
    const again = await mergeFamily(ctx, 'cache/app', 'main', policy);
    expect(again !== 'empty' && again?.manifest.digest).toBe(first.manifest.digest);
    expect(again !== 'empty' && again?.members).toBe(3);
  });

  it('leaves a tag without members, or holding something that is not a cache, to pass through', async () => {
    const { ctx, policy } = ctxFor(tempDir('bkcache-merge-'));
    expect(await mergeFamily(ctx, 'cache/app', 'main', policy)).toBeUndefined();
  });

  it('trims on merge and says how many results went', async () => {
    const policy = parsePolicies([{ repositories: '**', merge: true, maxSize: 40 }])[0]!;
    const { ctx, store } = ctxFor(tempDir('bkcache-merge-'), policy);
    const blobs = new MemoryBlobs();
    // Two one-step caches of ~30-byte layers: together more than maxSize; the older goes.
    const older = chainGraph(1, { prefix: 'old-', start: new Date(Date.now() - 7_200_000), size: () => 30, blobs });
    const newer = chainGraph(1, { prefix: 'new-', start: new Date(Date.now() - 3_600_000), size: () => 30, blobs });
    await pushMember(store, older.graph, blobs, 'main');
    await pushMember(store, newer.graph, blobs, 'main');
    const r = await mergeFamily(ctx, 'cache/app', 'main', policy);
    if (!r || r === 'empty') throw new Error('no merge');
    expect(r.trimmed).toBe(1);
    const doc = JSON.parse(r.manifest.bytes.toString('utf8'));
    expect(doc.layers.map((l: { digest: string }) => l.digest)).toEqual([newer.nodes[0]!.result!.layers[0]!.digest]);
  });
});

describe('policy metrics', () => {
  const call = (tenant: string | null, repo: string, route = 'blob', method = 'GET', bytesOut = 0, bytesIn = 0) =>
    ({ tenant, repo, route, method, bytesOut, bytesIn }) as unknown as Call;

  it('counts per tenant, the repository label only when asked, bounded', () => {
    const m = new PolicyMetrics();
    m.observe(call('acme', 'cache/a', 'blob', 'GET', 100), 200);
    m.observe(call(null, 'cache/a', 'upload', 'PUT', 0, 50), 201);
    m.observe(call(null, 'cache/a', 'upload', 'PATCH', 0, 70), 202);
    const lookup = call('acme', 'cache/a', 'manifest');
    PolicyMetrics.lookup(lookup, 'hit');
    m.observe(lookup, 200);
    m.event(call('acme', 'cache/a'), 'merge');
    const text = m.render();
    expect(text).not.toContain('repository=');
    const s = parseStats(text);
    expect(s.tenants.acme).toMatchObject({ hits: 1, blobsServed: 1, bytesServed: 100, merges: 1 });
    expect(s.tenants._anonymous).toMatchObject({ blobsPushed: 1, bytesPushed: 120 });
    expect(s.repositories).toBeUndefined();

    const r = new PolicyMetrics();
    r.repositoryLabel = true;
    for (let i = 0; i < MAX_TENANTS + 5; i++) r.event(call(`t${i}`, `repo/${i}`), 'repair');
    const rs = parseStats(r.render());
    expect(Object.keys(rs.tenants)).toHaveLength(MAX_TENANTS + 1);
    expect(rs.tenants[OTHER]!.repairs).toBe(5);
    expect(rs.repositories![OTHER]!.repairs).toBeGreaterThan(0);
    expect(rs.total.repairs).toBe(MAX_TENANTS + 5);
  });

  it('stats ignores lines it does not know and survives hostile label values', () => {
    const s = parseStats(
      [
        '# HELP x y',
        'bkcache_gateway_policy_events_total{tenant="a\\"b",event="merge"} 3',
        'bkcache_gateway_policy_events_total{tenant="a",event="bogus"} 3',
        'bkcache_gateway_blobs_served_total{tenant="a"} NaN',
        'garbage line',
        'other_total{tenant="a"} 9',
      ].join('\n'),
    );
    expect(s.tenants['a"b']!.merges).toBe(3);
    expect(s.total).toMatchObject({ merges: 3, blobsServed: 0 });
  });
});
