// Paths to the real BuildKit caches in ../shared/fixtures (see its README).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = process.env.BKCACHE_FIXTURES ?? path.resolve(here, '../../shared/fixtures');
export const BK = path.join(FIXTURES, 'buildkit-v0.12.5');
export const GRAPH_200 = path.join(FIXTURES, 'synthetic/graph-200');

export interface FixtureSummary {
  kind: string;
  mediaType: string;
  manifest: string;
  config: string | null;
  layers: number;
  records: number;
}

/** The summaries the fixtures README lists, read from its table. */
export function readmeSummaries(): Map<string, FixtureSummary> {
  const text = readFileSync(path.join(FIXTURES, 'README.md'), 'utf8');
  const out = new Map<string, FixtureSummary>();
  for (const line of text.split('\n')) {
    const m = /^\| `([^`]+)` \| [^|]+ \| `(\{.*\})` \|$/.exec(line);
    if (m) out.set(m[1]!, JSON.parse(m[2]!) as FixtureSummary);
  }
  return out;
}

export function fixtureDirs(): string[] {
  return [...readmeSummaries().keys()].map((name) => path.join(BK, name));
}

/** The merged-config digests the README lists: sources in order -> config digest. */
export function readmeMerges(): { sources: string[]; config: string }[] {
  const text = readFileSync(path.join(FIXTURES, 'README.md'), 'utf8');
  const out: { sources: string[]; config: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\| (`[^|]+`) \| `(sha256:[a-f0-9]{64})`/.exec(line);
    if (m) out.push({ sources: [...m[1]!.matchAll(/`([^`]+)`/g)].map((x) => path.join(FIXTURES, x[1]!)), config: m[2]! });
  }
  return out;
}
