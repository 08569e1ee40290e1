// A multi-tenant deployment for tests: a registry that needs credentials, a
// `bkcache serve` with auth (HS256 secret and an ES256 key pair) and two
// tiers that alone holds those credentials, and `bkcache token` to mint
// tokens; plus raw gRPC calls that keep a whole answer (code, details,
// metadata) so tests can compare answers byte for byte.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { CacheGraph } from '../../src/cache/graph.js';
import { grpcTarget, parseAddress } from '../../src/api/address.js';
import { cacheProto, type WireExportRequest, type WireExportResponse } from '../../src/api/proto.js';
import { graphToWire } from '../../src/api/wire.js';
import { runCli } from './cli.js';
import { startDaemon, type DaemonProcess } from './daemon.js';
import { startRegistry, type StartedRegistry } from './registry.js';

export interface MultiTenant {
  reg: StartedRegistry;
  d: DaemonProcess;
  cfgFile: string;
  /** The HS256 secret, for tests that hand-craft tokens. */
  secret: string;
  audience: string;
  /** Runs `bkcache token --config <cfg> ...args` and returns the token. */
  mint(args: string[]): Promise<string>;
  /** Every token minted so far (to check that none reaches a log). */
  minted: string[];
  stop(): Promise<{ code: number | null }>;
}

export async function startMultiTenant(audience = 'bkcache-mt'): Promise<MultiTenant> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-mt-'));
  const reg = await startRegistry({ auth: 'htpasswd' });
  // Registry credentials live with the daemon only; tenants never hold them.
  mkdirSync(path.join(dir, 'docker'));
  const auth = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
  writeFileSync(path.join(dir, 'docker/config.json'), JSON.stringify({ auths: { [reg.host]: { auth } } }));
  const secret = randomBytes(32).toString('hex');
  writeFileSync(path.join(dir, 'secret'), secret + '\n');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(dir, 'es.key.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(dir, 'es.pub.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const cfgFile = path.join(dir, 'bkcache.yaml');
  writeFileSync(
    cfgFile,
    `registry:
  hosts: { "${reg.host}": { insecure: true } }
  credentialsFile: docker/config.json
auth:
  audience: ${audience}
  hmacSecretFile: secret
  publicKeyFile: es.pub.pem
  privateKeyFile: es.key.pem
tiers:
  global: "${reg.host}/cache/global/{name}"
  tenant: "${reg.host}/cache/{tenant}/{name}"
`,
  );
  let d: DaemonProcess;
  try {
    d = await startDaemon({ args: ['--config', cfgFile], env: { DOCKER_CONFIG: '/nonexistent-bkcache-docker-config' } });
  } catch (err) {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const minted: string[] = [];
  return {
    reg,
    d,
    cfgFile,
    secret,
    audience,
    minted,
    mint: minter(cfgFile, minted),
    async stop() {
      const exit = await d.stop();
      d.cleanup();
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
      return exit;
    },
  };
}

/** HEAD with the registry's credentials (the test's view, not a tenant's): is the blob linked to `repo`? */
export async function linked(reg: StartedRegistry, repo: string, digest: string): Promise<boolean> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, {
    method: 'HEAD',
    headers: { authorization: `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString('base64')}` },
  });
  return res.status === 200;
}

// ------------------------------------------------------------ raw calls

export interface Answer {
  code: number;
  details: string;
  metadata: Record<string, unknown>;
}

/** What every error answer carries besides the daemon's own trailers. */
export const TRANSPORT = { 'content-type': 'application/grpc+proto' };

/**
 * The whole answer: code, details and every metadata entry, except `date`.
 * grpc-js sends errors as a trailers-only HTTP/2 response, so the client sees
 * the transport's headers among the metadata; `date` is the wall clock to the
 * second and differs between any two calls a second apart, whatever they ask.
 */
function answer(e: grpc.ServiceError): Answer {
  const { date: _date, ...metadata } = e.metadata?.getMap() ?? {};
  return { code: e.code, details: e.details, metadata };
}

function md(token?: string): grpc.Metadata {
  const m = new grpc.Metadata();
  // A value with a space is sent as is ("Basic …"), anything else as a bearer token.
  if (token !== undefined) m.set('authorization', token.includes(' ') ? token : `Bearer ${token}`);
  return m;
}

export const spec = (s: string) => ({ spec: s, type: '', attrs: {} });
export const start = (s: string): WireExportRequest => ({ msg: 'start', start: { target: spec(s) } });
export const graphMsgs = (target: string, g: CacheGraph, contentDir = ''): WireExportRequest[] => [
  start(target),
  { msg: 'graph', graph: graphToWire(g) },
  { msg: 'graph_done', graph_done: { content_store_dir: contentDir } },
];

type Raw = grpc.Client & Record<string, (...a: unknown[]) => unknown>;

/** CacheService calls with a chosen (or no, or broken) authorization value, answering with the whole status. */
export class RawCalls {
  private readonly c: Raw;

  constructor(addr: string) {
    this.c = new (cacheProto().ctor)(grpcTarget(parseAddress(addr)), grpc.credentials.createInsecure()) as unknown as Raw;
  }

  unary(method: 'Import' | 'Inspect' | 'Copy', req: object, token?: string): Promise<Answer & { value?: Record<string, unknown> }> {
    return new Promise((resolve) =>
      this.c[method]!(req, md(token), (err: grpc.ServiceError | null, value: Record<string, unknown>) =>
        resolve(err ? answer(err) : { code: 0, details: '', metadata: {}, value }),
      ),
    );
  }

  fetch(req: object, token?: string): Promise<Answer & { bytes?: Buffer }> {
    return new Promise((resolve) => {
      const call = this.c.FetchBlob!(req, md(token)) as grpc.ClientReadableStream<{ data: Buffer }>;
      const chunks: Buffer[] = [];
      call.on('data', (c) => chunks.push(c.data));
      call.on('error', (e: grpc.ServiceError) => resolve(answer(e)));
      call.on('status', (s: grpc.StatusObject) => s.code === grpc.status.OK && resolve({ code: 0, details: '', metadata: {}, bytes: Buffer.concat(chunks) }));
    });
  }

  /** An Export conversation by hand: `first`, then `afterNeed(need)` once need_blobs arrives, then half-close. */
  export(token: string | undefined, first: WireExportRequest[], afterNeed?: (need: string[]) => WireExportRequest[]): Promise<Answer & { need?: string[] }> {
    const call = (this.c.Export as (m: grpc.Metadata) => grpc.ClientDuplexStream<WireExportRequest, WireExportResponse>)(md(token));
    let need: string[] | undefined;
    return new Promise((resolve) => {
      call.on('data', (m: WireExportResponse) => {
        if (m.msg !== 'need_blobs') return;
        need = m.need_blobs?.digests ?? [];
        if (afterNeed) for (const x of afterNeed(need)) call.write(x);
        call.end();
      });
      call.on('error', (e: grpc.ServiceError) => resolve({ ...answer(e), need }));
      call.on('status', (s: grpc.StatusObject) => s.code === grpc.status.OK && resolve({ code: 0, details: '', metadata: {}, need }));
      for (const m of first) call.write(m);
      if (!afterNeed) call.end();
    });
  }

  close(): void {
    this.c.close();
  }
}

/** `bkcache token --config cfgFile ARGS…` as a function; every token it mints is kept in `minted` (logs are checked for them). */
export function minter(cfgFile: string, minted: string[]): (args: string[]) => Promise<string> {
  return async (args) => {
    const r = await runCli(['token', '--config', cfgFile, ...args]);
    if (r.code !== 0) throw new Error(`bkcache token ${args.join(' ')}: ${r.stderr}`);
    const t = r.stdout.trim();
    minted.push(t);
    return t;
  };
}
