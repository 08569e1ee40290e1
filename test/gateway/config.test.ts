import { describe, expect, it } from 'vitest';
import { applyGatewayFlags, parseGatewayConfig, parseUpstream } from '../../src/gateway/config.js';

const rel = (p: string) => `/etc/bkcache/${p}`;

describe('gateway config', () => {
  it('parses the upstream forms', () => {
    expect(parseUpstream('local')).toEqual({ kind: 'local', prefix: '' });
    expect(parseUpstream('127.0.0.1:5000')).toEqual({ kind: 'registry', registry: '127.0.0.1:5000', prefix: '' });
    expect(parseUpstream('reg.io/cache/ci')).toEqual({ kind: 'registry', registry: 'reg.io', prefix: 'cache/ci' });
    for (const bad of ['nohost', 'reg.io/Upper', 'reg.io/a//b', 'http://reg.io']) expect(() => parseUpstream(bad), bad).toThrow(/gateway upstream/);
  });

  it('reads the gateway section, paths relative to the file, unknown keys refused', () => {
    expect(parseGatewayConfig({ listen: 'tcp://127.0.0.1:5080', upstream: 'local', tls: { cert: 'c.pem', key: 'k.pem' }, imageManifestOnly: true, secretFile: 's' }, rel)).toEqual({
      listen: 'tcp://127.0.0.1:5080',
      upstream: 'local',
      tls: { cert: '/etc/bkcache/c.pem', key: '/etc/bkcache/k.pem' },
      imageManifestOnly: true,
      secretFile: '/etc/bkcache/s',
    });
    expect(() => parseGatewayConfig({ listen: 'x', upstream: 'local', typo: 1 }, rel)).toThrow(/unknown key/);
    expect(() => parseGatewayConfig({ upstream: 'local' }, rel)).toThrow(/gateway.listen/);
    expect(() => parseGatewayConfig({ listen: 'x', upstream: 'local', imageManifestOnly: 'yes' }, rel)).toThrow(/imageManifestOnly/);
  });

  it('flags go on top of the file, and go together', () => {
    expect(applyGatewayFlags(undefined, undefined, undefined)).toBeUndefined();
    expect(applyGatewayFlags(undefined, 'tcp://127.0.0.1:1', 'local')).toEqual({ listen: 'tcp://127.0.0.1:1', upstream: 'local', imageManifestOnly: false });
    expect(applyGatewayFlags({ listen: 'a', upstream: 'local', imageManifestOnly: true }, undefined, 'reg.io')).toEqual({ listen: 'a', upstream: 'reg.io', imageManifestOnly: true });
    expect(() => applyGatewayFlags(undefined, 'tcp://127.0.0.1:1', undefined)).toThrow(/go together/);
  });
});
