// The package installs: `npm pack` of a fresh checkout (its tracked files,
// no dist/) builds through `prepare` and holds the CLI and the library,
// LICENSE and the proto, no tests or benchmarks, and source maps whose
// sources are in the package; the tarball, unpacked as a dependency, runs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/tmp.js';
import { ROOT } from './harness/cli.js';

interface PackResult {
  filename: string;
  files: { path: string; mode: number }[];
}

let pack: PackResult;
let tarball: string;
let paths: Set<string>;

beforeAll(() => {
  // A checkout as git would give it: tracked and new files, nothing ignored (no dist/, no node_modules/).
  const clone = tempDir('bkcache-pack-');
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
    copyFileSync(path.join(ROOT, f), path.join(clone, f));
  }
  // The dependencies npm ci would install (the test machine may be offline).
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', clone], {
    cwd: clone,
    encoding: 'utf8',
    env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pack = (JSON.parse(out.slice(out.indexOf('['))) as PackResult[])[0]!;
  tarball = path.join(clone, pack.filename);
  paths = new Set(pack.files.map((f) => f.path));
}, 240_000);

describe('npm pack', () => {
  it('holds the built CLI and library, the proto, LICENSE and README', () => {
    for (const f of ['package.json', 'LICENSE', 'README.md', 'dist/src/cli/main.js', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'proto/bkcache/v1/cache.proto']) {
      expect(paths, f).toContain(f);
    }
    expect(pack.files.find((f) => f.path === 'dist/src/cli/main.js')!.mode & 0o111).not.toBe(0);
    expect(readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004[\s\S]*END OF TERMS AND CONDITIONS/);
  });

  it('holds no tests, benchmarks or harness', () => {
    const bad = [...paths].filter((p) => /^(dist\/)?(test|integration)\//.test(p) || /\.test\.[jt]s$/.test(p));
    expect(bad).toEqual([]);
  });

  it('every source map names sources that are in the package', () => {
    const maps = [...paths].filter((p) => p.endsWith('.map'));
    const dir = tempDir('bkcache-pack-x-');
    execFileSync('tar', ['-xzf', tarball, '-C', dir]);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(path.join(dir, 'package', m), 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const s of map.sources) {
        const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(m), map.sourceRoot ?? '', s));
        expect(paths, `${m} -> ${s}`).toContain(resolved);
      }
    }
    // And no .js names a map that is not there.
    for (const js of [...paths].filter((p) => p.endsWith('.js'))) {
      const ref = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(path.join(dir, 'package', js), 'utf8'));
      if (ref) expect(paths, `${js} -> ${ref[1]}`).toContain(path.posix.join(path.posix.dirname(js), ref[1]!));
    }
  });

  it('unpacked as a dependency, the CLI runs and the library imports', () => {
    const app = tempDir('bkcache-app-');
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const pkg = path.join(app, 'node_modules', 'bkcache');
    mkdirSync(pkg, { recursive: true });
    execFileSync('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1']);
    // Its dependencies, as npm install would place them (offline here).
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
    const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    expect(execFileSync(process.execPath, [path.join(pkg, 'dist/src/cli/main.js'), '--version'], { encoding: 'utf8' })).toBe(`bkcache ${version}\n`);
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('bkcache'); console.log(typeof m.connect, typeof m.CacheGraph, typeof m.BkError)"],
      { cwd: app, encoding: 'utf8' },
    );
    expect(out).toBe('function function function\n');
  });
});
