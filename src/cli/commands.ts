// The CLI's commands. Each parses its flags, calls src/cache (or a daemon),
// and prints. What a command needs beyond its flags is imported inside its
// run(), so loading this list (for --help) loads no gRPC, HTTP or cache code.
import { CLIENT_FLAGS, CLIENT_FLAGS_HELP, parseFlags, parseFormat, type FlagOptions } from './args.js';
import { EXIT, EXIT_CODES_HELP } from './exit-codes.js';
import { serve } from './serve.js';
import { token } from './token.js';
import { UsageError } from './usage-error.js';
import { lifecycleCommands, picture } from './lifecycle.js';
import { stats } from './stats.js';
import { version as versionText } from './version.js';

export interface Command {
  summary: string;
  help: string;
  /** The flags run() parses; each must appear in `help` (test/cli/help.test.ts checks). */
  flags?: FlagOptions;
  run(args: string[]): Promise<number>;
}

const INSPECT_FLAGS = { ...CLIENT_FLAGS, 'import-cache': { type: 'string', multiple: true }, format: { type: 'string' } } as const satisfies FlagOptions;
const COPY_FLAGS = {
  ...CLIENT_FLAGS,
  'import-cache': { type: 'string', multiple: true },
  'export-cache': { type: 'string' },
  format: { type: 'string' },
  progress: { type: 'string' },
} as const satisfies FlagOptions;
const HEALTH_FLAGS = { ...CLIENT_FLAGS, format: { type: 'string' } } as const satisfies FlagOptions;
const VERSION_FLAGS = { format: { type: 'string' } } as const satisfies FlagOptions;

/** The daemon to use: --addr, else $BKCACHE_ADDR; undefined means in this process. */
function daemonAddr(flag: string | undefined): string | undefined {
  return flag || process.env.BKCACHE_ADDR || undefined;
}

const inspect: Command = {
  summary: 'Show what a cache holds: its shape, manifest, config and records',
  flags: INSPECT_FLAGS,
  help: `Usage: bkcache inspect --import-cache SPEC [--format json|text] [--addr ADDR] [TLS flags]

Reads one cache and infers its shape: index, image-manifest or inline.

  --import-cache SPEC   the cache (exactly one):
                        type=local,src=DIR[,tag=T|,digest=D]
                        type=registry,ref=HOST/REPO[:TAG][,registry.insecure=true]
  --format json|text|dot|mermaid
                        text (default) prints a summary and the records as a tree;
                        json prints one object:
                        {"kind","mediaType","manifest","config","layers","records"};
                        dot (Graphviz) and mermaid print the records graph
${CLIENT_FLAGS_HELP}
${EXIT_CODES_HELP}`,
  async run(args) {
    const { values } = parseFlags(args, INSPECT_FLAGS);
    if (values.help) return printHelp(this.help);
    const from = values['import-cache'] ?? [];
    if (from.length === 0) throw new UsageError('inspect needs --import-cache');
    if (from.length > 1) throw new UsageError(`inspect reads one cache; got ${from.length} --import-cache flags (copy merges several)`);
    const format = parseFormat(values.format, ['dot', 'mermaid']);
    const { parseCacheSpec } = await import('../cache/spec.js');
    const spec = parseCacheSpec(from[0]!);
    const addr = daemonAddr(values.addr);
    let res;
    if (addr) {
      const { remoteInspect, connectFromFlags } = await import('./remote.js');
      res = await remoteInspect(connectFromFlags(addr, values), spec);
    } else {
      const { inspectCache } = await import('../cache/operations.js');
      res = await inspectCache(spec);
    }
    const { summary, loaded } = res;
    for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`);
    const pic = await picture(format, loaded);
    if (pic) process.stdout.write(pic);
    else if (format === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
    else {
      const { formatRecordsTree, formatSummary } = await import('./format.js');
      process.stdout.write(`${formatSummary(summary)}\n\nrecords:\n${formatRecordsTree(loaded)}\n`);
    }
    return EXIT.OK;
  },
};

const copy: Command = {
  summary: 'Copy, convert or merge caches between local layouts and registries',
  flags: COPY_FLAGS,
  help: `Usage: bkcache copy --import-cache SPEC [--import-cache SPEC ...] --export-cache SPEC
                    [--format json|text] [--progress MODE] [--addr ADDR] [TLS flags]

Imports every source into one cache graph (several sources merge into one
cache) and exports it. Converting between the index and image-manifest
shapes, or between Docker and OCI media types, is this same command.

  --import-cache SPEC   a source; repeat to merge. ignore-error=true on a source
                        skips it when it fails (not-found sources are always skipped)
  --export-cache SPEC   type=local,dest=DIR[,tag=T][,image-manifest=true|false][,oci-mediatypes=true|false]
                        type=registry,ref=HOST/REPO:TAG[,...same options]
                        image-manifest defaults to true unless oci-mediatypes=false
  --format json|text    json prints {"manifest","config","target","tag","stats"}
  --progress MODE       auto (default), tty (a live bar per blob), plain, json or quiet;
                        on stderr, also through a daemon
${CLIENT_FLAGS_HELP}
${EXIT_CODES_HELP}`,
  async run(args) {
    const { values } = parseFlags(args, COPY_FLAGS);
    if (values.help) return printHelp(this.help);
    const from = values['import-cache'] ?? [];
    if (from.length === 0) throw new UsageError('copy needs at least one --import-cache');
    if (!values['export-cache']) throw new UsageError('copy needs --export-cache');
    const format = parseFormat(values.format);
    const [{ Progress, parseProgressMode }, { parseCacheSpec }] = await Promise.all([import('./progress.js'), import('../cache/spec.js')]);
    const mode = parseProgressMode(values.progress);
    const sources = from.map(parseCacheSpec);
    const target = parseCacheSpec(values['export-cache']);
    const addr = daemonAddr(values.addr);
    const progress = new Progress(mode);
    let res;
    try {
      if (addr) {
        const { remoteCopy, connectFromFlags } = await import('./remote.js');
        // Quiet needs no events: the plain Copy call then.
        res = await remoteCopy(connectFromFlags(addr, values), sources, target, progress.mode === 'quiet' ? undefined : progress.onEvent);
      } else {
        const { copyCache } = await import('../cache/operations.js');
        res = await copyCache(sources, target, {}, { onProgress: progress.onEvent });
      }
    } finally {
      progress.done();
    }
    for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
    if (format === 'json') {
      process.stdout.write(
        JSON.stringify({ manifest: res.manifest ?? null, config: res.config ?? null, target: res.target, tag: res.tag, stats: res.stats }) + '\n',
      );
    } else if (res.manifest) {
      const { humanBytes } = await import('./format.js');
      const s = res.stats;
      process.stdout.write(
        `exported ${res.manifest.mediaType} ${res.manifest.digest} to ${res.target}\n` +
          `config ${res.config!.digest}\n` +
          `blobs: ${s.uploaded} uploaded (${humanBytes(s.uploadedBytes)}), ${s.skipped} already there, ${s.mounted} mounted\n`,
      );
    }
    return EXIT.OK;
  },
};

const PRUNE_FLAGS = { store: { type: 'string' }, format: { type: 'string' }, 'dry-run': { type: 'boolean' } } as const satisfies FlagOptions;

const prune: Command = {
  summary: 'Delete blobs of a local cache directory that no tag reaches',
  help: `Usage: bkcache prune --store DIR [--dry-run] [--format json|text]

Keeps the blobs reachable from index.json and those an export in progress
has claimed; deletes the rest, and temp files (*.ingest) of writers that died.

Refuses (exit 2, nothing deleted) a directory that is not an OCI image layout
it fully understands: no oci-layout or index.json (such as buildkitd's content
store), an empty or malformed index.json, an entry without a media type, or an
entry it cannot walk to its last blob (a missing or corrupt manifest, a type
whose children it cannot know).

  --dry-run             list what would be deleted; delete nothing
  --format json|text    json prints one object:
                        {"dryRun","kept","deleted","deletedBytes","blobs","tempFiles","tempBytes"}

Exit codes: 0 pruned (or listed), 1 an I/O failure, 2 bad usage or a refused directory.
`,
  flags: PRUNE_FLAGS,
  async run(args) {
    const { values } = parseFlags(args, PRUNE_FLAGS);
    if (values.help) return printHelp(this.help);
    if (!values.store) throw new UsageError('prune needs --store DIR');
    const format = parseFormat(values.format);
    const { LocalStore } = await import('../store/local/index.js');
    const { humanBytes } = await import('./format.js');
    const res = await new LocalStore(values.store).prune({ dryRun: values['dry-run'] === true });
    if (format === 'json') {
      process.stdout.write(JSON.stringify(res) + '\n');
      return EXIT.OK;
    }
    const verb = res.dryRun ? 'would delete' : 'deleted';
    for (const b of res.blobs) process.stdout.write(`${verb} ${b.digest} (${humanBytes(b.size)})\n`);
    process.stdout.write(
      `kept ${res.kept} blobs, ${verb} ${res.deleted} (${humanBytes(res.deletedBytes)}) and ${res.tempFiles} stale temp files (${humanBytes(res.tempBytes)})\n`,
    );
    return EXIT.OK;
  },
};

const health: Command = {
  summary: "Check a running daemon's health (grpc.health.v1)",
  flags: HEALTH_FLAGS,
  help: `Usage: bkcache health [--addr ADDR] [TLS flags] [--format json|text]

Exits 0 when the daemon answers SERVING, 1 otherwise. Used by the container
HEALTHCHECK. ADDR defaults to $BKCACHE_ADDR, else the default socket.

${CLIENT_FLAGS_HELP}  --format json|text    json prints {"status":"SERVING"}
`,
  async run(args) {
    const { values } = parseFlags(args, HEALTH_FLAGS);
    if (values.help) return printHelp(this.help);
    const format = parseFormat(values.format);
    const [{ connectFromFlags }, { defaultClientAddress }] = await Promise.all([import('./remote.js'), import('../api/address.js')]);
    const client = connectFromFlags(values.addr || defaultClientAddress(), values);
    try {
      const status = await client.health('', { timeoutMs: 5000 });
      process.stdout.write(format === 'json' ? JSON.stringify({ status }) + '\n' : `${status}\n`);
      return status === 'SERVING' ? EXIT.OK : EXIT.FAILED;
    } finally {
      client.close();
    }
  },
};

const version: Command = {
  summary: "Print bkcache's version (also: bkcache --version)",
  flags: VERSION_FLAGS,
  help: `Usage: bkcache version [--format json|text]

  --format json|text    json prints {"version","node"}
`,
  async run(args) {
    const { values } = parseFlags(args, VERSION_FLAGS);
    if (values.help) return printHelp(this.help);
    const v = versionText();
    process.stdout.write(parseFormat(values.format) === 'json' ? JSON.stringify({ version: v, node: process.version }) + '\n' : `bkcache ${v}\n`);
    return EXIT.OK;
  },
};

function printHelp(help: string): number {
  process.stdout.write(help);
  return EXIT.OK;
}

export const commands: Record<string, Command> = { serve, inspect, copy, prune, health, token, version, ...lifecycleCommands, stats };

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length)) + 2;
  return `Usage: bkcache [--addr ADDR] [TLS flags] [--format json|text] <command> [flags]

Reads and writes BuildKit build caches in registries and local OCI layouts.

Commands:
${Object.entries(commands)
  .map(([k, c]) => `  ${k.padEnd(width)}${c.summary}`)
  .join('\n')}
  ${'help'.padEnd(width)}bkcache help <command> prints a command's flags (as does <command> --help)

Global flags (before or after the command):
${CLIENT_FLAGS_HELP}  --format json|text    output format; with json, errors are JSON on stderr too
  --version             print the version

Environment: BKCACHE_ADDR (the daemon for inspect, copy and health), BKCACHE_TOKEN
(bearer token for a daemon with auth), DOCKER_CONFIG (registry credentials),
BKCACHE_DEBUG=1 (stack traces).

${EXIT_CODES_HELP}`;
}
