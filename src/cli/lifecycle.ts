// The cache lifecycle commands: verify (and repair), trim, gc, diff, du, and
// the pictures `inspect --format dot|mermaid` prints. Each parses its flags,
// calls src/cache/lifecycle, and prints text, or one JSON object with
// `--format json`. Exit codes: 0 ok; EXIT.BROKEN (5) when verify finds the
// cache broken (and no repair was asked for); errors map in run.ts.
//
// What a command needs beyond its flags is imported inside its run(), as in
// commands.ts, so listing the commands (--help) loads no cache or HTTP code.
import type { DiffReport } from '../cache/lifecycle/diff.js';
import type { GcReport } from '../cache/lifecycle/gc.js';
import type { OpenedCache } from '../cache/lifecycle/cache.js';
import type { PictureFormat } from '../cache/lifecycle/picture.js';
import type { LoadedCache } from '../cache/import.js';
import { printable } from '../printable.js';
import { parseCount, parseFlags, parseFormat, type FlagOptions } from './args.js';
import { EXIT } from './exit-codes.js';
import { UsageError } from './usage-error.js';
import type { Command } from './commands.js';

/** verify found missing or corrupt blobs. */
export const EXIT_BROKEN = EXIT.BROKEN;

const spec = async (s: string) => (await import('../cache/spec.js')).parseCacheSpec(s);
const humanBytes = async () => (await import('./format.js')).humanBytes;

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');
/**
 * Text a cache or registry wrote (record keys, selectors, descriptions, tag
 * names), shortened when it is a digest, as one visible line: an escape
 * sequence or a newline in it must not drive the terminal or forge a line
 * of our output. JSON output needs nothing (JSON.stringify escapes).
 */
const short = (d: string) => printable(d.startsWith('sha256:') ? d.slice(7, 19) : d);

const textOrJson = (v: string | undefined) => parseFormat(v) as 'text' | 'json';

function help(text: string): number {
  process.stdout.write(text);
  return 0;
}

function warn(loaded: LoadedCache): void {
  for (const w of loaded.warnings) process.stderr.write(`warning: ${printable(w, 1000)}\n`);
}

/** `inspect --format dot|mermaid`: the picture of a loaded cache, or undefined for other formats. */
export async function picture(format: string, loaded: LoadedCache): Promise<string | undefined> {
  if (format !== 'dot' && format !== 'mermaid') return undefined;
  const { renderPicture } = await import('../cache/lifecycle/picture.js');
  return renderPicture(loaded, format as PictureFormat);
}

const VERIFY_FLAGS = {
  'import-cache': { type: 'string' },
  'export-cache': { type: 'string' },
  deep: { type: 'boolean' },
  repair: { type: 'boolean' },
  concurrency: { type: 'string' },
  format: { type: 'string' },
} as const satisfies FlagOptions;

const verify: Command = {
  flags: VERIFY_FLAGS,
  summary: 'Check that every blob a cache names exists (and, with --deep, is intact); repair it',
  help: `Usage: bkcache verify --import-cache SPEC [--deep] [--repair --export-cache SPEC] [--format json|text]

Checks every blob the cache names: HEAD on registries, stat on local layouts,
in parallel (--concurrency, default 8). --deep also reads every blob and checks
its digest and size.

  --repair --export-cache SPEC   write the cache without the results whose layer
                                 chains lost a blob (SPEC may be the same ref: the
                                 tag moves only once the new cache is complete)
  --concurrency N                checks in flight, each on its own kept-alive
                                 connection (default 8)
  --format json                  {"ok","manifest","blobs","missing","corrupt","records","brokenRecords"}
                                 (with --repair also "repair": {"manifest","dropped"})

Exit status: 0 intact (or repaired), ${EXIT_BROKEN} when blobs are missing or corrupt
(other failures exit as every command does: bkcache --help lists the codes).
`,
  async run(args) {
    const { values } = parseFlags(args, VERIFY_FLAGS);
    if (values.help) return help(this.help);
    const format = textOrJson(values.format);
    if (!values['import-cache']) throw new UsageError('verify needs --import-cache');
    if (values.repair && !values['export-cache']) throw new UsageError('--repair needs --export-cache (it may be the same ref)');
    if (!values.repair && values['export-cache']) throw new UsageError('--export-cache is only used with --repair');
    const concurrency = values.concurrency === undefined ? undefined : parseCount('concurrency', values.concurrency, 1, 256);
    const src = await spec(values['import-cache']);
    const target = values['export-cache'] ? await spec(values['export-cache']) : undefined;
    const { repairCache, verifyCache } = await import('../cache/lifecycle/verify.js');
    const v = await verifyCache(src, {}, { deep: values.deep, concurrency });
    try {
      if (v.opened) warn(v.opened.loaded);
      let repair: { manifest: string; dropped: string[] } | undefined;
      if (target && !v.report.ok) {
        const r = await repairCache(v, target, {});
        repair = { manifest: r.export.manifest!.digest, dropped: r.dropped };
      }
      const r = v.report;
      if (format === 'json') out(JSON.stringify(repair ? { ...r, repair } : r));
      else {
        out(
          `${r.ok ? 'ok' : 'BROKEN'}: manifest ${r.manifest}, ${r.blobs} blobs checked${values.deep ? ' (deep)' : ''}, ` +
            `${r.records} records, ${r.brokenRecords} broken`,
        );
        for (const d of r.missing) out(`missing ${d}`);
        for (const d of r.corrupt) out(`corrupt ${d}`);
        if (repair) {
          out(`repaired: wrote ${repair.manifest} without ${repair.dropped.length} results:`);
          for (const d of repair.dropped) out(`  dropped ${d}`);
        } else if (target) out('nothing to repair');
      }
      return r.ok || repair ? EXIT.OK : EXIT_BROKEN;
    } finally {
      await v.opened?.close();
    }
  },
};

const TRIM_FLAGS = {
  'import-cache': { type: 'string' },
  'export-cache': { type: 'string' },
  'max-age': { type: 'string' },
  'max-size': { type: 'string' },
  'dry-run': { type: 'boolean' },
  format: { type: 'string' },
} as const satisfies FlagOptions;

const trim: Command = {
  flags: TRIM_FLAGS,
  summary: 'Drop old results from a cache until it fits an age and a size',
  help: `Usage: bkcache trim --import-cache SPEC --export-cache SPEC [--max-age DUR] [--max-size SIZE] [--dry-run] [--format json|text]

Keeps the results created within --max-age (30d, 12h, 1h30m), then drops the
oldest results until the blobs the cache names fit in --max-size (20GiB, 500MB,
1.5G, bytes). Records that lead only to dropped results go with them. The
export is what \`copy\` writes for the kept records; --export-cache may be the
same ref.

  --max-age DUR   keep results created within DUR
  --max-size SIZE then drop the oldest until the named blobs fit
  --dry-run       report, write nothing
  --format json   {"before":{"records","layers","bytes"},"after":{...},"droppedResults"}
`,
  async run(args) {
    const { values } = parseFlags(args, TRIM_FLAGS);
    if (values.help) return help(this.help);
    const format = textOrJson(values.format);
    if (!values['import-cache']) throw new UsageError('trim needs --import-cache');
    if (!values['export-cache'] && !values['dry-run']) throw new UsageError('trim needs --export-cache (or --dry-run)');
    if (values['max-age'] === undefined && values['max-size'] === undefined) throw new UsageError('trim needs --max-age or --max-size');
    const { parseDuration, parseSize } = await import('../cache/lifecycle/units.js');
    const { exportMarshalled, openCache } = await import('../cache/lifecycle/cache.js');
    const { trimOpened } = await import('../cache/lifecycle/trim.js');
    const maxAge = values['max-age'] === undefined ? undefined : parseDuration(values['max-age']);
    const maxSize = values['max-size'] === undefined ? undefined : parseSize(values['max-size']);
    const target = values['export-cache'] ? await spec(values['export-cache']) : undefined;
    const opened = await openCache(await spec(values['import-cache']));
    try {
      warn(opened.loaded);
      const { report, plan, marshalled } = trimOpened(opened, { maxAge, maxSize });
      let manifest: string | undefined;
      if (!values['dry-run'] && target) {
        const res = await exportMarshalled(opened, marshalled, target);
        for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
        manifest = res.manifest?.digest;
      }
      if (format === 'json') out(JSON.stringify(report));
      else {
        const hb = await humanBytes();
        const c = (x: typeof report.before) => `${x.records} records, ${x.layers} layers, ${hb(x.bytes)}`;
        out(`before: ${c(report.before)}\nafter:  ${c(report.after)}\ndropped ${report.droppedResults} results`);
        for (const n of plan.dropped) out(`  ${n.result!.createdAt} ${printable(n.digest)}`);
        if (values['dry-run']) out('dry run: nothing written');
        else out(manifest ? `wrote ${manifest}` : 'nothing left to write: no result was kept; the target was not changed');
      }
      return 0;
    } finally {
      await opened.close();
    }
  },
};

const GC_FLAGS = {
  repository: { type: 'string' },
  'older-than': { type: 'string' },
  keep: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean' },
  format: { type: 'string' },
} as const satisfies FlagOptions;

const gc: Command = {
  flags: GC_FLAGS,
  summary: 'Delete whole caches (tags) older than an age, in a registry repository or a local layout',
  help: `Usage: bkcache gc --repository SPEC [--older-than DUR] [--keep TAG-GLOB ...] [--dry-run] [--format json|text]

  --repository SPEC   type=registry,ref=HOST/REPO[,registry.insecure=true] or type=local,src=DIR
  --older-than DUR    delete caches whose newest record is older (30d, 12h)
  --dry-run           list what would be deleted; delete nothing
  --keep GLOB         never delete tags matching GLOB (* and ?); repeatable

Only tags naming a BuildKit cache (index or image-manifest shape) are deleted;
images and other artifacts are never touched, nor any manifest a kept tag names.
A registry must allow deletes; its own garbage collection then frees the blobs.
A local layout loses the index.json entries (replaced atomically), then unreachable
blobs are pruned. One of --older-than and --keep is required.

Right before deleting, the tags are listed again: a tag re-pointed at (or pushed
to) an expired manifest meanwhile keeps it. After the deletes each deleted tag is
resolved again; one the registry still serves is reported not deleted.

  --format json   {"deleted":[tag...],"kept":[tag...]}, plus "failed":[tag...] when a
                  delete failed or was ignored (then the error follows on stderr and
                  gc exits with its code; deleting stops at the first failure)
`,
  async run(args) {
    const { values } = parseFlags(args, GC_FLAGS);
    if (values.help) return help(this.help);
    const format = textOrJson(values.format);
    if (!values.repository) throw new UsageError('gc needs --repository');
    if (values['older-than'] === undefined && !values.keep?.length) {
      throw new UsageError('gc needs --older-than or --keep (refusing to delete every cache)');
    }
    const { parseDuration } = await import('../cache/lifecycle/units.js');
    const { GcIncompleteError, gcRepository } = await import('../cache/lifecycle/gc.js');
    const olderThan = values['older-than'] === undefined ? undefined : parseDuration(values['older-than']);
    const repo = await spec(values.repository);
    let r: GcReport;
    try {
      r = await gcRepository(repo, {}, { olderThan, keep: values.keep, dryRun: values['dry-run'] });
    } catch (err) {
      // Deletes that happened are reported even when a later one failed; the error then goes to stderr as any error does.
      if (err instanceof GcIncompleteError) printGc(err.report, format, await humanBytes());
      throw err;
    }
    printGc(r, format, await humanBytes());
    return 0;
  },
};

function printGc(r: GcReport, format: 'text' | 'json', hb: (n: number) => string): void {
  if (format === 'json') {
    const failed = r.failed.length ? { failed: r.failed.map((t) => t.tag) } : {};
    out(JSON.stringify({ deleted: r.deleted.map((t) => t.tag), kept: r.kept.map((t) => t.tag), ...failed }));
    // stdout holds the one JSON object: that prune refused the layout goes to stderr.
    if (r.pruneRefused) process.stderr.write(`warning: ${printable(r.note, 1000)}\n`);
    return;
  }
  const verb = r.dryRun ? 'would delete' : 'deleted';
  for (const t of r.deleted) out(`${verb} ${printable(t.tag)} ${short(t.digest)}${t.newest ? ` newest record ${t.newest}` : ''}`);
  for (const t of r.kept) out(`kept ${printable(t.tag)} ${short(t.digest)} (${t.reason})`);
  for (const t of r.failed) out(`not deleted ${printable(t.tag)} ${short(t.digest)} (${t.reason})`);
  if (r.prune) out(`pruned ${r.prune.deleted} blobs (${hb(r.prune.deletedBytes)})`);
  if (r.note) out(`note: ${r.note}`);
}

const DIFF_FLAGS = { 'import-cache': { type: 'string', multiple: true }, format: { type: 'string' } } as const satisfies FlagOptions;

const diff: Command = {
  flags: DIFF_FLAGS,
  summary: 'Show why a build with one cache misses another: common records and first divergences',
  help: `Usage: bkcache diff --import-cache A --import-cache B [--format json|text]

Aligns the two caches by cache key, as BuildKit matches records, counts the
records both hold and those only one holds, and lists the first divergences:
records of B that A lacks although all their inputs are in A, with their depth,
result layers, description, and the record of A each most likely replaces.

  --format json   {"common","onlyA","onlyB","divergences":[...]}
`,
  async run(args) {
    const { values } = parseFlags(args, DIFF_FLAGS);
    if (values.help) return help(this.help);
    const format = textOrJson(values.format);
    const specs = values['import-cache'] ?? [];
    if (specs.length !== 2) throw new UsageError('diff needs exactly two --import-cache (A, then B)');
    const { openCache } = await import('../cache/lifecycle/cache.js');
    const { diffGraphs } = await import('../cache/lifecycle/diff.js');
    const opened: OpenedCache[] = [];
    try {
      for (const s of specs) opened.push(await openCache(await spec(s)));
      opened.forEach((o) => warn(o.loaded));
      const r = diffGraphs(opened[0]!.graph, opened[1]!.graph);
      if (format === 'json') out(JSON.stringify(r));
      else out(formatDiff(r, await humanBytes()));
      return 0;
    } finally {
      for (const o of opened) await o.close();
    }
  },
};

export function formatDiff(r: DiffReport, humanBytes: (n: number) => string): string {
  const lines = [`common ${r.common}, only in A ${r.onlyA}, only in B ${r.onlyB}`];
  if (r.divergences.length === 0) lines.push(r.onlyB === 0 ? 'B is fully in A' : 'no first divergence');
  for (const d of r.divergences) {
    const size = d.layers.reduce((s, l) => s + l.size, 0);
    lines.push(`diverges at depth ${d.depth}: ${printable(d.record)}${d.description ? `  ${printable(d.description)}` : ''}`);
    if (d.layers.length) lines.push(`  result: ${d.layers.length} layers, ${humanBytes(size)}, top ${short(d.layers[d.layers.length - 1]!.digest)}`);
    if (d.replaces) {
      lines.push(`  replaces A's ${printable(d.replaces.record)}`);
      for (const x of d.replaces.differences) {
        const where = x.input === undefined ? '' : ` of input ${x.input}`;
        lines.push(`    ${x.what}${where}: ${x.a === '' ? '(none)' : printable(String(x.a))} -> ${x.b === '' ? '(none)' : printable(String(x.b))}`);
      }
    }
  }
  return lines.join('\n');
}

const DU_FLAGS = { 'import-cache': { type: 'string' }, top: { type: 'string' }, format: { type: 'string' } } as const satisfies FlagOptions;

const du: Command = {
  flags: DU_FLAGS,
  summary: 'Show what makes a cache big: bytes per result chain, shared and unique',
  help: `Usage: bkcache du --import-cache SPEC [--top N] [--format json|text]

Bytes of every result's layer chain, and how much of it no other result
names (what dropping that result alone frees); the total counts every blob
once. Text shows the --top N (default 10) largest results.

  --top N         results shown in text (default 10)
  --format json   {"blobs","bytes","results":[{"record","layers","bytes","uniqueBytes"}...]}
`,
  async run(args) {
    const { values } = parseFlags(args, DU_FLAGS);
    if (values.help) return help(this.help);
    const format = textOrJson(values.format);
    if (!values['import-cache']) throw new UsageError('du needs --import-cache');
    const top = values.top === undefined ? 10 : parseCount('top', values.top, 0, Number.MAX_SAFE_INTEGER);
    const { openCache } = await import('../cache/lifecycle/cache.js');
    const { diskUsage } = await import('../cache/lifecycle/du.js');
    const opened = await openCache(await spec(values['import-cache']));
    try {
      warn(opened.loaded);
      const r = diskUsage(opened.graph);
      const hb = await humanBytes();
      if (format === 'json') {
        out(JSON.stringify({ blobs: r.blobs, bytes: r.bytes, results: r.results.map(({ record, layers, bytes, uniqueBytes }) => ({ record, layers, bytes, uniqueBytes })) }));
      } else {
        const shared = r.results.reduce((s, x) => s + x.uniqueBytes, 0);
        out(`total ${hb(r.bytes)} in ${r.blobs} blobs, ${r.results.length} results (${hb(r.bytes - shared)} shared between results)`);
        out(`${'BYTES'.padStart(10)} ${'UNIQUE'.padStart(10)} LAYERS RECORD`);
        for (const x of r.results.slice(0, top)) {
          out(`${hb(x.bytes).padStart(10)} ${hb(x.uniqueBytes).padStart(10)} ${String(x.layers).padStart(6)} ${short(x.record)}${x.description ? `  ${printable(x.description)}` : ''}`);
        }
      }
      return 0;
    } finally {
      await opened.close();
    }
  },
};

export const lifecycleCommands: Record<string, Command> = { verify, trim, gc, diff, du };
