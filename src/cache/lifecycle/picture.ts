// A picture of a cache graph: Graphviz DOT (https://graphviz.org/doc/info/lang.html)
// and Mermaid flowcharts (https://mermaid.js.org/syntax/flowchart.html).
// Records are nodes (short cache key, and the result's layers with sizes);
// an edge runs from a source record to the record that links from it,
// labelled with the input index and the selector. Works on the loaded config
// parts, so it draws what the cache holds, also through a daemon.
import type { LoadedCache } from '../import.js';
import { printable } from '../../printable.js';

export type PictureFormat = 'dot' | 'mermaid';

const short = (d: string) => (d.startsWith('sha256:') ? d.slice(7, 19) : d.slice(0, 24));

/**
 * Layers listed per result, from the top. A hostile config can give every
 * one of tens of thousands of records a chain tens of thousands of layers
 * deep: listed in full that is billions of lines. Real chains stay far
 * below this (overlayfs stacks at most about 125 layers).
 */
const MAX_CHAIN_LINES = 128;

interface PNode {
  id: string;
  lines: string[];
  result: boolean;
}

interface PEdge {
  from: string;
  to: string;
  label: string;
}

function collect(loaded: LoadedCache): { parts: { title?: string; nodes: PNode[]; edges: PEdge[] }[] } {
  return {
    parts: loaded.parts.map((part, p) => {
      const { config, provider } = part;
      const nodes: PNode[] = config.records.map((r, i) => {
        const lines = [`r${i} ${short(r.digest)}`];
        const res = r.results[0];
        if (res) {
          // Walk the parent chain from the result's top layer down to the base (at most MAX_CHAIN_LINES).
          const chain: string[] = [];
          const seen = new Set<number>();
          let at = res.layer;
          while (at >= 0 && at < config.layers.length && !seen.has(at)) {
            if (chain.length === MAX_CHAIN_LINES) {
              chain.push('… lower layers not shown');
              break;
            }
            seen.add(at);
            const l = config.layers[at]!;
            const d = provider.get(l.blob);
            chain.push(`${short(l.blob)} ${d ? `${d.size.toLocaleString('en-US')} B` : 'missing'}`);
            at = l.parent;
          }
          // A loop, not push(...chain): a chain as long as the config allows would pass the argument limit.
          for (let k = chain.length - 1; k >= 0; k--) lines.push(chain[k]!);
        }
        return { id: `p${p}r${i}`, lines, result: !!res };
      });
      const edges: PEdge[] = [];
      config.records.forEach((r, i) =>
        r.inputs.forEach((group, input) =>
          group.forEach((inp) => {
            if (inp.link < 0 || inp.link >= config.records.length) return;
            edges.push({ from: `p${p}r${inp.link}`, to: `p${p}r${i}`, label: inp.selector ? `in ${input} ${short(inp.selector)}` : `in ${input}` });
          }),
        ),
      );
      return { title: loaded.parts.length > 1 ? `platform image ${p + 1}` : undefined, nodes, edges };
    }),
  };
}

/** A DOT string literal: each line printable, quotes and backslashes escaped, lines ended by \l (left-aligned). */
function dotString(lines: string[]): string {
  return `"${lines.map((l) => printable(l).replace(/[\\"]/g, (c) => `\\${c}`)).join('\\l')}\\l"`;
}

export function toDot(loaded: LoadedCache): string {
  const out = ['digraph cache {', '  rankdir=TB;', '  node [shape=box, fontname="monospace", fontsize=10];', '  edge [fontname="monospace", fontsize=9];'];
  const { parts } = collect(loaded);
  // dot's crossing minimisation and spline routing take minutes on a few
  // hundred cross-linked records; bound them on large graphs.
  if (parts.reduce((n, p) => n + p.nodes.length, 0) > 100) out.push('  splines=line; mclimit=0.2; nslimit=2;');
  parts.forEach((part, p) => {
    const indent = part.title ? '    ' : '  ';
    if (part.title) out.push(`  subgraph cluster_${p} {`, `    label=${dotString([part.title])};`);
    for (const n of part.nodes) out.push(`${indent}${n.id} [label=${dotString(n.lines)}${n.result ? ', style=filled, fillcolor="#e8f0fe"' : ''}];`);
    for (const e of part.edges) out.push(`${indent}${e.from} -> ${e.to} [label=${dotString([e.label])}];`);
    if (part.title) out.push('  }');
  });
  out.push('}');
  return out.join('\n') + '\n';
}

/**
 * Mermaid text in a quoted label, each line printable. Everything but
 * letters, digits and a few plain marks becomes an entity code (Mermaid's
 * `#code;`): quotes, `|` (ends an edge label), brackets, `%%` (a directive
 * anywhere in the text), `&`, backticks (markdown strings), `<` (HTML).
 */
function mermaidString(lines: string[]): string {
  const esc = (l: string) => printable(l).replace(/[^A-Za-z0-9 .,:/_+=@-]/gu, (c) => `#${c.codePointAt(0)};`);
  return `"${lines.map(esc).join('<br/>')}"`;
}

export function toMermaid(loaded: LoadedCache): string {
  const out = ['flowchart TB'];
  const { parts } = collect(loaded);
  parts.forEach((part, p) => {
    const indent = part.title ? '    ' : '  ';
    if (part.title) out.push(`  subgraph part${p}[${mermaidString([part.title])}]`);
    for (const n of part.nodes) out.push(`${indent}${n.id}[${mermaidString(n.lines)}]`);
    for (const e of part.edges) out.push(`${indent}${e.from} -->|${mermaidString([e.label])}| ${e.to}`);
    if (part.title) out.push('  end');
  });
  const withResult = parts.flatMap((part) => part.nodes.filter((n) => n.result).map((n) => n.id));
  if (withResult.length) out.push('  classDef result fill:#e8f0fe', `  class ${withResult.join(',')} result`);
  return out.join('\n') + '\n';
}

export function renderPicture(loaded: LoadedCache, format: PictureFormat): string {
  return format === 'dot' ? toDot(loaded) : toMermaid(loaded);
}
