// The CLI's commands. Each parses its flags, calls src/cache, and prints.
import { copyCache, inspectCache } from '../cache/operations.js';
import { parseCacheSpec } from '../cache/spec.js';
import { LocalStore } from '../store/local/index.js';
import { Progress, parseProgressMode } from './progress.js';
import { remoteCopy, remoteInspect } from './remote.js';
import { serve } from './serve.js';
import { token } from './token.js';
import { connect } from '../client/index.js';
import { formatRecordsTree, formatSummary, humanBytes } from './format.js';
import { parseFlags } from './args.js';
import { UsageError } from './usage-error.js';
import { lifecycleCommands, picture } from './lifecycle.js';
import { stats } from './stats.js';

export interface Command {
  summary: string;
  help: string;
  run(args: string[]): Promise<number>;
}

const inspect: Command = {
  summary: 'Show what a cache holds: its shape, manifest, config and records',
  help: `Usage: bkcache inspect --import-cache SPEC [--format json|table]

Reads one cache and infers its shape: index, image-manifest or inline.

  --import-cache SPEC   type=local,src=DIR[,tag=T|,digest=D]
                        type=registry,ref=HOST/REPO[:TAG][,registry.insecure=true]
  --format json|table|dot|mermaid
                        json prints one object:
                        {"kind","mediaType","manifest","config","layers","records"};
                        dot (Graphviz) and mermaid print the records graph
  --addr ADDR           run through a bkcache daemon (unix:///path.sock or tcp://host:port)
                        instead of in this process; the output is the same
`,
  async run(args) {
    const { values } = parseFlags(args, { 'import-cache': { type: 'string' }, format: { type: 'string' }, addr: { type: 'string' } });
    if (values.help) return printHelp(this.help);
    if (!values['import-cache']) throw new UsageError('inspect needs --import-cache');
    const format = values.format ?? 'table';
    if (!['json', 'table', 'dot', 'mermaid'].includes(format)) throw new UsageError(`unknown --format ${format}`);
    const spec = parseCacheSpec(values['import-cache']);
    const { summary, loaded } = values.addr ? await remoteInspect(values.addr, spec) : await inspectCache(spec);
    for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`);
    const pic = picture(format, loaded);
    if (pic) process.stdout.write(pic);
    else if (format === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
    else process.stdout.write(`${formatSummary(summary)}\n\nrecords:\n${formatRecordsTree(loaded)}\n`);
    return 0;
  },
};

const copy: Command = {
  summary: 'Copy, convert or merge caches between local layouts and registries',
  help: `Usage: bkcache copy --import-cache SPEC [--import-cache SPEC ...] --export-cache SPEC [--format json|text]

Imports every source into one cache graph (several sources merge into one
cache) and exports it. Converting between the index and image-manifest
shapes, or between Docker and OCI media types, is this same command.

  --import-cache SPEC   a source; repeat to merge
  --export-cache SPEC   type=local,dest=DIR[,tag=T][,image-manifest=true|false][,oci-mediatypes=true|false]
                        type=registry,ref=HOST/REPO:TAG[,...same options]
                        image-manifest defaults to true unless oci-mediatypes=false
  --progress MODE       auto (default), tty (a live bar per blob), plain, json or quiet; on stderr
  --addr ADDR           run through a bkcache daemon (unix:///path.sock or tcp://host:port)
`,
  async run(args) {
    const { values } = parseFlags(
      args,
      {
        'import-cache': { type: 'string', multiple: true },
        'export-cache': { type: 'string' },
        format: { type: 'string' },
        addr: { type: 'string' },
        progress: { type: 'string' },
      },
    );
    if (values.help) return printHelp(this.help);
    const from = values['import-cache'] ?? [];
    if (from.length === 0) throw new UsageError('copy needs at least one --import-cache');
    if (!values['export-cache']) throw new UsageError('copy needs --export-cache');
    const format = values.format ?? 'text';
    if (format !== 'json' && format !== 'text') throw new UsageError(`unknown --format ${format}`);
    const mode = parseProgressMode(values.progress);
    const sources = from.map(parseCacheSpec);
    const target = parseCacheSpec(values['export-cache']);
    let res: Awaited<ReturnType<typeof copyCache>>;
    if (values.addr) {
      res = await remoteCopy(values.addr, sources, target);
    } else {
      const progress = new Progress(mode);
      try {
        res = await copyCache(sources, target, {}, { onProgress: progress.onEvent });
      } finally {
        progress.done();
      }
    }
    for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
    if (format === 'json') {
      process.stdout.write(
        JSON.stringify({ manifest: res.manifest ?? null, config: res.config ?? null, target: res.target, tag: res.tag, stats: res.stats }) + '\n',
      );
    } else if (res.manifest) {
      const s = res.stats;
      process.stdout.write(
        `exported ${res.manifest.mediaType} ${res.manifest.digest} to ${res.target}\n` +
          `config ${res.config!.digest}\n` +
          `blobs: ${s.uploaded} uploaded (${humanBytes(s.uploadedBytes)}), ${s.skipped} already there, ${s.mounted} mounted\n`,
      );
    }
    return 0;
  },
};

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
  async run(args) {
    const { values } = parseFlags(args, { store: { type: 'string' }, format: { type: 'string' }, 'dry-run': { type: 'boolean' } });
    if (values.help) return printHelp(this.help);
    if (!values.store) throw new UsageError('prune needs --store DIR');
    const format = values.format ?? 'text';
    if (format !== 'json' && format !== 'text') throw new UsageError(`unknown --format ${format}`);
    const res = await new LocalStore(values.store).prune({ dryRun: values['dry-run'] === true });
    if (format === 'json') {
      process.stdout.write(JSON.stringify(res) + '\n');
      return 0;
    }
    const verb = res.dryRun ? 'would delete' : 'deleted';
    for (const b of res.blobs) process.stdout.write(`${verb} ${b.digest} (${humanBytes(b.size)})\n`);
    process.stdout.write(
      `kept ${res.kept} blobs, ${verb} ${res.deleted} (${humanBytes(res.deletedBytes)}) and ${res.tempFiles} stale temp files (${humanBytes(res.tempBytes)})\n`,
    );
    return 0;
  },
};

const health: Command = {
  summary: "Check a running daemon's health (grpc.health.v1)",
  help: `Usage: bkcache health [--addr ADDR]

Exits 0 when the daemon answers SERVING, 1 otherwise. Used by the container
HEALTHCHECK. ADDR defaults to $BKCACHE_ADDR, else the default socket.
`,
  async run(args) {
    const { values } = parseFlags(args, { addr: { type: 'string' } });
    if (values.help) return printHelp(this.help);
    const client = connect(values.addr);
    try {
      const status = await client.health('', { timeoutMs: 5000 });
      process.stdout.write(`${status}\n`);
      return status === 'SERVING' ? 0 : 1;
    } finally {
      client.close();
    }
  },
};

function printHelp(help: string): number {
  process.stdout.write(help);
  return 0;
}

export const commands: Record<string, Command> = { serve, inspect, copy, prune, health, token, ...lifecycleCommands, stats };

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length)) + 2;
  return `Usage: bkcache <command> [flags]

Reads and writes BuildKit build caches in registries and local OCI layouts.

Commands:
${Object.entries(commands)
  .map(([k, c]) => `  ${k.padEnd(width)}${c.summary}`)
  .join('\n')}

Run 'bkcache <command> --help' for a command's flags.
`;
}
