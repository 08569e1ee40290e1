// A multi-tenant gateway for tests: a registry that needs credentials only
// the daemon holds, `bkcache serve` with auth (HS256), two tiers and the
// gateway in front of the registry; `bkcache token` mints tenant tokens.
// `second()` starts another daemon on the same config: same secret, same upstream.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../../test/tmp.js';
import { minter } from './tenants.js';
import { startGatewayFromConfig, type GatewayProcess } from './gateway.js';
import { startRegistry, type StartedRegistry } from './registry.js';

export interface GatewayTenants {
  reg: StartedRegistry;
  gw: GatewayProcess;
  cfgFile: string;
  mint(args: string[]): Promise<string>;
  minted: string[];
  /** Another daemon with the same config (and so the same secret). */
  second(): Promise<GatewayProcess>;
  stop(): Promise<void>;
}

export async function startGatewayTenants(extraGateway = ''): Promise<GatewayTenants> {
  const dir = tempDir('bkcache-gw-mt-');
  const reg = await startRegistry({ auth: 'htpasswd' });
  mkdirSync(path.join(dir, 'docker'));
  const basic = Buffer.from(`${reg.username}:${reg.password}`).toString('base64');
  writeFileSync(path.join(dir, 'docker/config.json'), JSON.stringify({ auths: { [reg.host]: { auth: basic } } }));
  writeFileSync(path.join(dir, 'secret'), randomBytes(32).toString('hex') + '\n');
  const cfgFile = path.join(dir, 'bkcache.yaml');
  writeFileSync(
    cfgFile,
    `metricsAddr: 127.0.0.1:0
registry:
  hosts: { "${reg.host}": { insecure: true } }
  credentialsFile: docker/config.json
auth:
  audience: bkcache-gw
  hmacSecretFile: secret
tiers:
  global: "${reg.host}/cache/global/{name}"
  tenant: "${reg.host}/cache/{tenant}/{name}"
gateway:
  listen: tcp://127.0.0.1:0
  upstream: ${reg.host}
${extraGateway}`,
  );
  const started: GatewayProcess[] = [];
  let gw: GatewayProcess;
  try {
    gw = await startGatewayFromConfig(cfgFile);
  } catch (err) {
    await reg.stop();
    throw err;
  }
  started.push(gw);
  const minted: string[] = [];
  return {
    reg,
    gw,
    cfgFile,
    minted,
    mint: minter(cfgFile, minted),
    async second() {
      const g = await startGatewayFromConfig(cfgFile);
      started.push(g);
      return g;
    },
    async stop() {
      for (const g of started) {
        await g.d.stop();
        g.d.cleanup();
      }
      await reg.stop();
    },
  };
}
