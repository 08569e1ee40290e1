// Hostile requests to an in-process daemon (auth off, unix socket) that the
// process-level suites (integration/daemon-limits.test.ts) do not send: each
// is answered with a typed status in bounded time, and the daemon keeps serving.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcTarget, parseAddress } from '../../src/api/address.js';
import { cacheProto, type WireExportRequest } from '../../src/api/proto.js';
import { connect, type CacheClient } from '../../src/client/index.js';
import { jsonLogger } from '../../src/server/log.js';
import { defaultConfig } from '../../src/server/config.js';
import { Daemon } from '../../src/server/server.js';

let tmp: string;
let daemon: Daemon;
let client: CacheClient;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-hostile-'));
  const base = defaultConfig();
  const cfg = { ...base, listen: [`unix://${tmp}/d.sock`], root: path.join(tmp, 'root'), logLevel: 'off' as const, limits: { ...base.limits, maxSources: 8, idleTimeoutSeconds: 1 } };
  daemon = new Daemon(cfg, jsonLogger('off'));
  await daemon.start();
  client = connect(daemon.addresses[0]!);
});

afterAll(async () => {
  client?.close();
  await daemon?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

describe('Import and Copy source lists', () => {
  it('refuses more than limits.maxSources sources with RESOURCE_EXHAUSTED before looking at any', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `type=local,src=nowhere-${i}`);
    await expect(client.import(many)).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'too-many-sources' });
    await expect(client.copy(many.slice(0, 9), 'type=local,dest=out')).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'too-many-sources' });
    // At the limit every source is looked at, and each miss reported.
    const res = await client.import(many.slice(0, 8));
    expect(res.hit).toBeUndefined();
    expect(res.misses.map((m) => m.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

describe('Export idle timeout', () => {
  it('empty graph parts are not progress: a client sending only those loses the call (and its slot) to the idle timeout', async () => {
    const raw = new (cacheProto().ctor)(grpcTarget(parseAddress(daemon.addresses[0]!)), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Export(): grpc.ClientDuplexStream<WireExportRequest, object>;
    };
    const call = raw.Export();
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => undefined);
    call.write({ msg: 'start', start: { target: { spec: 'type=local,dest=idle', type: '', attrs: {} } } });
    // Five times the idle timeout of empty parts, each well inside it; an honest stall ends after one.
    let sent = 0;
    const outcome = await Promise.race([
      ended,
      (async () => {
        for (; sent < 50; sent++) {
          await new Promise((r) => setTimeout(r, 100));
          call.write({ msg: 'graph', graph: { records: [], links: [], results: [] } });
        }
        return undefined;
      })(),
    ]);
    call.cancel();
    raw.close();
    expect(outcome, `still open after ${sent} empty parts`).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(outcome!.metadata.get('bkcache-reason')).toEqual(['idle-timeout']);
  });
});
