// Human-readable output for `bkcache inspect`: a summary, then the records
// as a tree (sources above the records that link from them).
import type { LoadedCache } from '../cache/import.js';
import type { CacheSummary } from '../cache/operations.js';
import { printable } from '../printable.js';

/** A digest shortened; any other text a cache wrote (keys, selectors) as one visible line. */
const short = (d: string) => printable(d.startsWith('sha256:') ? d.slice(7, 19) : d);

/** Tree levels indented; deeper records are listed at this indentation with their depth. */
const MAX_INDENT = 32;

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatSummary(s: CacheSummary): string {
  const rows: [string, string][] = [
    ['kind', s.kind],
    ['media type', s.mediaType],
    ['manifest', s.manifest],
    ['config', s.config ?? '-'],
    ['layers', String(s.layers)],
    ['records', String(s.records)],
  ];
  return rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n');
}

/** The records tree of every part (one part per platform for inline caches). */
export function formatRecordsTree(loaded: LoadedCache): string {
  const out: string[] = [];
  loaded.parts.forEach((part, p) => {
    const { config, provider } = part;
    if (loaded.parts.length > 1) out.push(`platform image ${p + 1}:`);
    const children = config.records.map(() => [] as { idx: number; input: number; selector: string }[]);
    config.records.forEach((r, i) =>
      r.inputs.forEach((g, input) => g.forEach((inp) => children[inp.link]?.push({ idx: i, input, selector: inp.selector }))),
    );
    const result = (i: number) => {
      const r = config.records[i]!;
      const res = r.results[0];
      if (!res) return '';
      const layer = config.layers[res.layer];
      if (!layer) return ` -> layer #${res.layer}`;
      const d = provider.get(layer.blob);
      return ` -> ${short(layer.blob)}${d ? ` (${humanBytes(d.size)})` : ' (missing)'} ${res.createdAt}`;
    };
    const printed = new Set<number>();
    // Depth-first with a stack of its own, not recursion (a chain of 100 000
    // records overflowed the call stack), and the indentation stops growing
    // at MAX_INDENT levels (past it, each line says its depth): indenting a
    // deep chain in full wrote output quadratic in its length.
    const walk = (root: number) => {
      const stack: { i: number; prefix: string; label: string; depth: number }[] = [{ i: root, prefix: '', label: '', depth: 0 }];
      while (stack.length) {
        const { i, prefix, label, depth } = stack.pop()!;
        const again = printed.has(i);
        out.push(`${prefix}${label}#${i} ${short(config.records[i]!.digest)}${result(i)}${again ? ' (see above)' : ''}`);
        if (again) continue;
        printed.add(i);
        const kids = children[i]!;
        const deep = depth + 1 > MAX_INDENT;
        const childPrefix = deep ? prefix : prefix + (label ? (label.startsWith('└') ? '   ' : '│  ') : '');
        for (let n = kids.length - 1; n >= 0; n--) {
          const k = kids[n]!;
          const sel = k.selector ? ` sel=${short(k.selector)}` : '';
          const at = deep ? `(depth ${depth + 1}) ` : '';
          stack.push({ i: k.idx, prefix: childPrefix, label: `${n === kids.length - 1 ? '└─' : '├─'}${at}[in ${k.input}${sel}] `, depth: depth + 1 });
        }
      }
    };
    config.records.forEach((r, i) => {
      if (r.inputs.length === 0) walk(i);
    });
    config.records.forEach((_, i) => {
      if (!printed.has(i)) walk(i);
    });
  });
  return out.join('\n');
}
