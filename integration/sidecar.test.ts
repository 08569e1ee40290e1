// The sidecar end to end: the real `bkcache serve` process (from dist/) on a
// temp unix socket, driven by the client library and by hand-written calls.
// Targets are a parameter (TARGETS): registry-backed ones join the list once
// that backend lands, and every flow below runs against each.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importChain } from '../src/cache/operations.js';
import { connect, type CacheClient } from '../src/client/index.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import { digestBytes } from '../src/oci/digest.js';
import { graphToWire } from '../src/api/wire.js';
import { synthetic, writeContentStore } from '../test/client/synthetic.js';
import { ROOT } from './harness/cli.js';
import { rawExport, startDaemon, type DaemonProcess } from './harness/daemon.js';
import { startRegistry, type StartedRegistry } from './harness/registry.js';

/** A place caches go: `exportSpec` and `importSpec` name the same cache. */
interface Target {
  name: string;
  exportSpec(cache: string, opts?: string): string;
  importSpec(cache: string): string;
}

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bkcache-sidecar-'));
/** A real distribution registry (plain HTTP on loopback), started in beforeAll. */
let reg: StartedRegistry;
const opt = (o: string) => (o ? ',' + o : '');
const TARGETS: Target[] = [
  {
    name: 'local',
    exportSpec: (c, o = '') => `type=local,dest=${path.join(scratch, c)}${opt(o)}`,
    importSpec: (c) => `type=local,src=${path.join(scratch, c)}`,
  },
  {
    name: 'registry',
    exportSpec: (c, o = '') => `type=registry,ref=${reg.host}/sidecar/${c}:cache,registry.insecure=true${opt(o)}`,
    importSpec: (c) => `type=registry,ref=${reg.host}/sidecar/${c}:cache,registry.insecure=true`,
  },
];
const SHAPES = [
  { name: 'image-manifest', opts: 'mode=max,image-manifest=true,oci-mediatypes=true', mediaType: 'application/vnd.oci.image.manifest.v1+json' },
  { name: 'index', opts: 'mode=max,image-manifest=false', mediaType: 'application/vnd.oci.image.index.v1+json' },
];

let d: DaemonProcess;
let client: CacheClient;

beforeAll(async () => {
  reg = await startRegistry();
  d = await startDaemon();
  client = connect(d.addr);
});

afterAll(async () => {
  client?.close();
  if (d) {
    const exit = await d.stop('SIGTERM');
    expect(exit.code).toBe(0);
    d.cleanup();
  }
  await reg?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** The daemon is up and healthy after whatever a test threw at it. */
async function expectHealthy(): Promise<void> {
  expect(d.alive()).toBe(true);
  expect(await client.health()).toBe('SERVING');
}

/** Every layer the cache's tag points at can be read back: no tag points at missing blobs. */
async function expectConsistent(c: CacheClient, spec: string): Promise<void> {
  const imp = await c.import([spec]);
  if (!imp.hit) return;
  const { descriptors } = imp.graph.marshal();
  for (const desc of descriptors.values()) expect((await c.readBlob(spec, desc)).length).toBe(desc.size);
}

/** Waits until the log has a call line for `method` matching `pred`. */
async function logLine(method: string, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const l = d.logs.find((x) => x.msg === 'call' && x.method === method && pred(x));
    if (l) return l;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${method} log line matched; logs: ${JSON.stringify(d.logs.slice(-5))}`);
}

describe.each(TARGETS)('sidecar with $name targets', (t) => {
  describe.each(SHAPES)('$name shape', (shape) => {
    const cache = `roundtrip-${shape.name}`;
    const s = synthetic();

    it('exports a synthetic graph, imports it back equal, byte for byte', async () => {
      const res = await client.export(t.exportSpec(cache, shape.opts), s.graph, s.provider);
      expect(res.manifest?.mediaType).toBe(shape.mediaType);
      expect(new Set(res.requested)).toEqual(new Set(s.blobs.keys()));
      expect(res.stats.uploaded).toBe(s.blobs.size);
      expect(res.sentBytes).toBe(res.stats.receivedBytes);

      const imp = await client.import([t.importSpec(cache)]);
      expect(imp.hit?.manifest.digest).toBe(res.manifest!.digest);
      expect(imp.hit?.kind).toBe(shape.name);
      expect(imp.graph.marshal()).toEqual(s.graph.marshal());
      for (const [digest, data] of s.blobs) expect((await client.readBlob(t.importSpec(cache), digest)).equals(data)).toBe(true);

      const info = await client.inspect(t.importSpec(cache));
      expect(info.summary).toEqual(imp.hit!.summary);
      expect(info.summary.records).toBe(imp.graph.marshal().config.records.length);
    });

    it('exports again with zero layer bytes over gRPC and the same manifest', async () => {
      s.provider.opened.length = 0;
      const imp = await client.import([t.importSpec(cache)]);
      const res = await client.export(t.exportSpec(cache, shape.opts), imp.graph, s.provider);
      expect(res.requested).toEqual([]);
      expect(res.sentBytes).toBe(0);
      expect(res.stats.receivedBytes).toBe(0);
      expect(res.stats.skipped).toBe(s.blobs.size);
      expect(s.provider.opened).toEqual([]);
      expect(res.manifest?.digest).toBe(imp.hit!.manifest.digest);
    });
  });

  it('reads blobs from a content store directory (content_store_dir)', async () => {
    const s = synthetic([700_000, 1_100_000]);
    const store = path.join(scratch, 'content-store');
    writeContentStore(store, s.blobs);
    const res = await client.export(t.exportSpec('from-store'), s.graph, { contentStoreDir: store });
    expect(res.requested).toEqual([]);
    expect(res.stats.receivedBytes).toBe(0);
    expect(res.stats.uploaded).toBe(s.blobs.size);
    await expectConsistent(client, t.importSpec('from-store'));
  });

  it('falls through a missing first source; other errors fail unless ignore-error', async () => {
    const s = synthetic([10_000]);
    await client.export(t.exportSpec('chain-hit'), s.graph, s.provider);
    const missing = t.importSpec('chain-missing');
    const hit = await client.import([missing, t.importSpec('chain-hit')]);
    expect(hit.hit?.index).toBe(1);
    expect(hit.misses.map((m) => m.code)).toEqual(['NOT_FOUND']);

    // A source that exists but is broken is not a miss.
    const broken = path.join(scratch, 'chain-broken');
    mkdirSync(broken, { recursive: true });
    writeFileSync(path.join(broken, 'index.json'), '{"manifests": 7}');
    const brokenSpec = `type=local,src=${broken}`;
    await expect(client.import([brokenSpec, t.importSpec('chain-hit')])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await client.import([brokenSpec, t.importSpec('chain-hit')], { ignoreError: true })).hit?.index).toBe(1);
    expect((await client.import([`${brokenSpec},ignore-error=true`, t.importSpec('chain-hit')])).hit?.index).toBe(1);
    const none = await client.import([missing]);
    expect(none.hit).toBeUndefined();
    expect(none.graph.nodes).toEqual([]);
  });
});

describe('bad input gets the right status and the daemon survives', () => {
  const target = TARGETS[0]!;
  const s = synthetic([50_000, 60_000]);
  const wire = graphToWire(s.graph);
  const start = (cache: string) => ({ msg: 'start' as const, start: { target: { spec: target.exportSpec(cache), type: '', attrs: {} } } });
  const graphMsgs = (cache: string, g = wire) => [start(cache), { msg: 'graph' as const, graph: g }, { msg: 'graph_done' as const, graph_done: { content_store_dir: '' } }];
  const chunk = (digest: string, data: Buffer, offset = 0) => ({ msg: 'blob_chunk' as const, blob_chunk: { digest, offset, data } });
  const done = (digest: string) => ({ msg: 'blob_done' as const, blob_done: { digest } });

  it('malformed graph, looping links, bad spec → INVALID_ARGUMENT', async () => {
    const dangling = { ...wire, links: [...wire.links, { record_id: 0, src_id: 999, input: 0, selector: '' }] };
    expect((await rawExport(d.addr, graphMsgs('bad-1', dangling))).code).toBe(3);
    const loop = { ...wire, links: [...wire.links, { record_id: 0, src_id: wire.records.at(-1)!.id, input: 0, selector: '' }] };
    const r = await rawExport(d.addr, graphMsgs('bad-2', loop));
    expect([r.code, r.details]).toEqual([3, expect.stringContaining('looping')]);
    expect((await rawExport(d.addr, [start('x'), start('y')])).code).toBe(3);
    expect((await rawExport(d.addr, [{ msg: 'start', start: { target: { spec: 'type=nope,ref=x', type: '', attrs: {} } } }])).code).toBe(3);
    expect((await rawExport(d.addr, [{ msg: 'start', start: { target: { spec: 'type=local,dest=/tmp/x,image-manifest=true,oci-mediatypes=false', type: '', attrs: {} } } }])).code).toBe(3);
    await expectHealthy();
  });

  it('unknown blob → INVALID_ARGUMENT for a chunk, NOT_FOUND for a fetch', async () => {
    const r = await rawExport(d.addr, graphMsgs('bad-3'), () => [chunk(digestBytes('nobody asked'), Buffer.from('x'))]);
    expect(r.code).toBe(3);
    await expect(client.readBlob(target.importSpec('roundtrip-index'), digestBytes('not in the cache'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expectHealthy();
  });

  it('digest mismatch mid-stream → DATA_LOSS, and no tag is written', async () => {
    const r = await rawExport(d.addr, graphMsgs('bad-4'), (need) =>
      need.flatMap((dg) => {
        const data = Buffer.from(s.blobs.get(dg)!);
        data[data.length >> 1] ^= 0xff; // same size, different bytes
        return [chunk(dg, data.subarray(0, 1000)), chunk(dg, data.subarray(1000), 1000), done(dg)];
      }),
    );
    expect(r.code).toBe(15);
    expect((await client.import([target.importSpec('bad-4')])).hit).toBeUndefined();
    const over = await rawExport(d.addr, graphMsgs('bad-5'), (need) => [chunk(need[0]!, Buffer.concat([s.blobs.get(need[0]!)!, Buffer.from('extra')]))]);
    expect(over.code).toBe(15);
    await expectHealthy();
  });

  it('a blob cut short by the client closing → INVALID_ARGUMENT, no tag', async () => {
    const r = await rawExport(d.addr, graphMsgs('bad-6'), (need) => [chunk(need[0]!, s.blobs.get(need[0]!)!.subarray(0, 10))]);
    expect(r.code).toBe(3);
    expect((await client.import([target.importSpec('bad-6')])).hit).toBeUndefined();
  });

  it('an oversize message → RESOURCE_EXHAUSTED', async () => {
    const big = Buffer.alloc(9 << 20);
    const r = await rawExport(d.addr, graphMsgs('bad-7'), (need) => [chunk(need[0]!, big)]);
    expect(r.code).toBe(8);
    await expectHealthy();
  });

  it('a client process killed mid-blob leaves no tag and the daemon serving', async () => {
    const script = `
      const { connect, CacheGraph } = await import(${JSON.stringify(path.join(ROOT, 'dist/src/client/index.js'))});
      const { Readable } = await import('node:stream');
      const g = new CacheGraph();
      const r = g.add('sha256:' + 'a'.repeat(64));
      r.addResult('2024-01-01T00:00:00Z', [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'b'.repeat(64), size: 1 << 30,
        annotations: { 'containerd.io/uncompressed': 'sha256:' + 'c'.repeat(64) } }]);
      let sent = 0;
      const slow = new Readable({ read() { setTimeout(() => { this.push(Buffer.alloc(64 << 10)); if ((sent += 1) === 4) console.log('sending'); }, 5); } });
      await connect(process.argv[1]).export(process.argv[2], g, { open: () => slow });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, d.addr, target.exportSpec('vanished')], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('sending') && resolve()));
    child.kill('SIGKILL');
    const line = await logLine('Export', (l) => String(l.target).includes('vanished'));
    expect(line.code).toBe('CANCELLED');
    expect((await client.import([target.importSpec('vanished')])).hit).toBeUndefined();
    await expectHealthy();
  });
});

describe('SIGTERM during an export', () => {
  /** A provider whose blobs trickle out over about `ms` milliseconds. */
  const slowly = (blobs: Map<string, Buffer>, ms: number) => ({
    open(desc: Descriptor) {
      const data = blobs.get(desc.digest)!;
      const step = Math.ceil(data.length / 20);
      let i = 0;
      return new Readable({
        read() {
          setTimeout(() => this.push(i < data.length ? data.subarray(i, (i += step)) : null), ms / 20);
        },
      });
    },
  });

  it.each([
    { grace: '20', outcome: 'completes' },
    { grace: '0.2', outcome: 'fails cleanly' },
  ])('with a $grace s grace period the export $outcome', async ({ grace, outcome }) => {
    const daemon = await startDaemon({ args: ['--grace', grace] });
    const c = connect(daemon.addr);
    const dir = path.join(scratch, `sigterm-${grace}`);
    try {
      const s = synthetic([400_000, 300_000]);
      const exporting = c.export(`type=local,dest=${dir}`, s.graph, slowly(s.blobs, 600)).then(
        (r) => ({ ok: true as const, r }),
        (e: { code: string }) => ({ ok: false as const, e }),
      );
      await new Promise((r) => setTimeout(r, 400));
      const exit = daemon.stop('SIGTERM');
      const res = await exporting;
      expect((await exit).code).toBe(0);
      if (outcome === 'completes') {
        expect(res.ok).toBe(true);
      } else {
        expect(res.ok).toBe(false);
        if (!res.ok) expect(['CANCELLED', 'UNAVAILABLE']).toContain(res.e.code);
      }
      // Whatever happened, a tag never points at missing blobs: check with the in-process operations.
      const imported = await importChain([{ type: 'local', attrs: { src: dir } }]);
      if (outcome === 'completes') expect(imported.hit).toBeDefined();
      if (imported.hit) for (const desc of imported.graph.marshal().descriptors.values()) await imported.blobs.fetch(desc).then((st) => st.destroy());
      else expect(imported.misses[0]?.code).toBe('NOT_FOUND');
    } finally {
      c.close();
      daemon.cleanup();
    }
  });
});
