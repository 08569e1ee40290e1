// The daemon config's `registry.timeouts` keys reach the registry client's RegistryTimeouts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyConfigFile, defaultConfig } from '../../src/server/config.js';
import { RegistryClient } from '../../src/store/registry/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bkcache-registry-timeouts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (doc: unknown) => {
  const f = path.join(tmp, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(doc));
  return f;
};

describe('registry.timeouts', () => {
  it('turns seconds into milliseconds and keeps counts', async () => {
    const cfg = applyConfigFile(defaultConfig(), file({ registry: { timeouts: { headersSeconds: 0.5, idleSeconds: 2, manifestSeconds: 3, commitSeconds: 4, minBytesPerSecond: 0, maxResumes: 1 } } }));
    const t = cfg.backend?.registry?.timeouts;
    expect(t).toEqual({ headersMs: 500, idleMs: 2000, manifestMs: 3000, commitMs: 4000, minBytesPerSecond: 0, maxResumes: 1 });
    const client = new RegistryClient({ timeouts: t });
    expect(client.timeouts).toMatchObject({ headersMs: 500, connectMs: 30_000 });
    await client.close();
  });

  it('refuses unknown keys and bad values', () => {
    for (const timeouts of [{ headerSeconds: 1 }, { idleSeconds: 0 }, { manifestSeconds: 'x' }, { maxResumes: -1 }, { minBytesPerSecond: 1.5 }]) {
      expect(() => applyConfigFile(defaultConfig(), file({ registry: { timeouts } }))).toThrow(/registry\.timeouts/);
    }
  });

  it('the client refuses a zero or negative duration', () => {
    expect(() => new RegistryClient({ timeouts: { headersMs: 0 } })).toThrow(/headersMs/);
    expect(() => new RegistryClient({ timeouts: { idleMs: -1 } })).toThrow(/idleMs/);
  });
});
