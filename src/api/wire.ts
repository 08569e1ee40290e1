// Conversions between the core's types and the proto messages, shared by the
// daemon and the client. Everything coming off the wire is validated here, so
// a malformed message becomes INVALID_ARGUMENT before it reaches the core.
import { CacheGraph, CacheNode, type Hint, type RecordHandle } from '../cache/graph.js';
import { chainKeys } from '../cache/marshal.js';
import type { CacheSummary } from '../cache/operations.js';
import { cacheSpecOf, formatCacheSpec, parseCacheSpec, type CacheSpec } from '../cache/spec.js';
import type { TransferStats } from '../cache/transfer.js';
import { invalidArgument, resourceExhausted } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseDigest } from '../oci/digest.js';
import { MAX_METADATA_BYTES } from '../store/content.js';
import type { WireDescriptor, WireGraph, WireHint, WireSpec, WireStats, WireSummary } from './proto.js';

export function descriptorToWire(d: Descriptor): WireDescriptor {
  return { media_type: d.mediaType, digest: d.digest, size: d.size, annotations: { ...(d.annotations ?? {}) }, urls: [...(d.urls ?? [])] };
}

/** A digest from the wire, checked: INVALID_ARGUMENT naming `where` otherwise. */
export function checkDigest(digest: string, where = 'digest'): void {
  try {
    parseDigest(digest);
  } catch (err) {
    throw invalidArgument(`${where}: ${(err as Error).message}`, { reason: 'invalid-digest' });
  }
}

export function descriptorFromWire(w: WireDescriptor | null | undefined, where = 'descriptor'): Descriptor {
  if (!w) throw invalidArgument(`${where} is missing`, { reason: 'malformed-descriptor' });
  checkDigest(w.digest, where);
  const size = Number(w.size);
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument(`${where}: invalid size ${w.size}`, { reason: 'malformed-descriptor' });
  const d: Descriptor = { mediaType: w.media_type ?? '', digest: w.digest, size };
  if (w.annotations && Object.keys(w.annotations).length) d.annotations = { ...w.annotations };
  if (w.urls?.length) d.urls = [...w.urls];
  return d;
}

/**
 * An empty spec (no text, no type) names the daemon's default store; see
 * resolveSpec. The structured form follows the text form's rules (one value
 * per case-insensitive key), so both name a place the same way.
 */
export function specFromWire(w: WireSpec | null | undefined): CacheSpec {
  if (w?.spec) return parseCacheSpec(w.spec);
  return cacheSpecOf(w?.type ?? '', w?.attrs ?? {});
}

export function specToWire(s: string | CacheSpec | undefined): WireSpec {
  if (s === undefined || s === '') return { spec: '', type: '', attrs: {} };
  if (typeof s === 'string') return { spec: s, type: '', attrs: {} };
  return { spec: '', type: s.type, attrs: { ...s.attrs } };
}

export function specLabel(s: CacheSpec): string {
  return s.type ? formatCacheSpec(s) : '(default store)';
}

export function summaryToWire(s: CacheSummary): WireSummary {
  return { kind: s.kind, media_type: s.mediaType, manifest: s.manifest, config: s.config ?? '', layers: s.layers, records: s.records };
}

export function summaryFromWire(w: WireSummary | null | undefined): CacheSummary {
  if (!w) throw invalidArgument('response has no summary');
  return {
    kind: w.kind as CacheSummary['kind'],
    mediaType: w.media_type,
    manifest: w.manifest,
    config: w.config || null,
    layers: w.layers,
    records: w.records,
  };
}

export interface WireStatsIn extends TransferStats {
  receivedBytes?: number;
}

export function statsToWire(s: WireStatsIn): WireStats {
  return {
    uploaded: s.uploaded,
    uploaded_bytes: s.uploadedBytes,
    skipped: s.skipped,
    skipped_bytes: s.skippedBytes,
    mounted: s.mounted,
    mounted_bytes: s.mountedBytes,
    received_bytes: s.receivedBytes ?? 0,
  };
}

export function statsFromWire(w: WireStats | null | undefined): TransferStats & { receivedBytes: number } {
  return {
    uploaded: w?.uploaded ?? 0,
    uploadedBytes: w?.uploaded_bytes ?? 0,
    skipped: w?.skipped ?? 0,
    skippedBytes: w?.skipped_bytes ?? 0,
    mounted: w?.mounted ?? 0,
    mountedBytes: w?.mounted_bytes ?? 0,
    receivedBytes: w?.received_bytes ?? 0,
  };
}

/** Marks a layer without an ordering hint in Result.layer_hints. */
const NO_HINT = 0xffffffff;

/** A graph as records numbered in creation order, links per input, and results (with ordering hints). */
export function graphToWire(graph: CacheGraph): WireGraph {
  const ids = new Map<CacheNode, number>(graph.nodes.map((n, i) => [n, i]));
  const out: WireGraph = { records: [], links: [], results: [] };
  const hintOf = (h: Hint | undefined): WireHint | null => (h ? { source: h[0], index: h[1] } : null);
  const layerHints = (layers: Descriptor[]): WireHint[] => {
    const hs = chainKeys(layers).map((k) => graph.hintsView.get(k));
    return hs.some((h) => h) ? hs.map((h) => hintOf(h) ?? { source: NO_HINT, index: 0 }) : [];
  };
  graph.nodes.forEach((n, id) => {
    out.records.push({ id, digest: n.digest, hint: hintOf(n.hint) });
    n.links.forEach((group, input) => {
      for (const l of group.values()) {
        const src = ids.get(l.src);
        if (src !== undefined) out.links.push({ record_id: id, src_id: src, input, selector: l.selector });
      }
    });
    if (n.result) {
      out.results.push({ record_id: id, created_at: n.result.createdAt, layers: n.result.layers.map(descriptorToWire), layer_hints: layerHints(n.result.layers) });
    }
  });
  return out;
}

/** Splits a wire graph into parts of at most `max` entries, so no message nears the size limit. */
export function* splitGraph(g: WireGraph, max = 2000): Generator<WireGraph> {
  for (let i = 0; i < g.records.length; i += max) yield { records: g.records.slice(i, i + max), links: [], results: [] };
  for (let i = 0; i < g.links.length; i += max) yield { records: [], links: g.links.slice(i, i + max), results: [] };
  // Results carry descriptors, so fewer per part.
  const r = Math.max(1, Math.floor(max / 8));
  for (let i = 0; i < g.results.length; i += r) yield { records: [], links: [], results: g.results.slice(i, i + r) };
}

export interface GraphLimits {
  maxRecords: number;
  maxLinks: number;
  maxLayersPerResult: number;
  maxInputs: number;
  /**
   * The graph's bytes over all its parts (digests, selectors, descriptors,
   * annotations; see wireGraphBytes). Counts bound the number of entries, this
   * bounds their size: without it, long selectors in many parts, each under
   * the message limit, grow the daemon by gigabytes and make a config nothing
   * can read back.
   */
  maxGraphBytes: number;
}

/** 8 MiB: half of the 16 MiB a config may have to be read back (MAX_METADATA_BYTES), with room for JSON's overhead. */
export const DEFAULT_MAX_GRAPH_BYTES = 8 << 20;

export const DEFAULT_GRAPH_LIMITS: GraphLimits = {
  maxRecords: 500_000,
  maxLinks: 2_000_000,
  maxLayersPerResult: 1_000,
  maxInputs: 4_096,
  maxGraphBytes: DEFAULT_MAX_GRAPH_BYTES,
};

/** What one input slot of a record costs in the graph budget: an empty group's JSON and its object, roughly. */
const INPUT_SLOT_BYTES = 16;

const str = (v: unknown): number => (typeof v === 'string' ? v.length : 0);

function descriptorBytes(d: WireDescriptor | null | undefined): number {
  if (!d) return 0;
  let n = 16 + str(d.media_type) + str(d.digest);
  for (const [k, v] of Object.entries(d.annotations ?? {})) n += 8 + k.length + str(v);
  for (const u of d.urls ?? []) n += 4 + str(u);
  return n;
}

/**
 * The bytes a graph part adds: its strings plus a few bytes per entry for
 * numbers and framing. Close to what the part takes in the config written
 * from it, and to the memory it holds while the graph is assembled.
 */
export function wireGraphBytes(part: WireGraph): number {
  let n = 0;
  for (const r of part.records ?? []) n += 16 + str(r.digest) + (r.hint ? 8 : 0);
  for (const l of part.links ?? []) n += 16 + str(l.selector);
  for (const r of part.results ?? []) {
    n += 16 + str(r.created_at) + 8 * (r.layer_hints?.length ?? 0);
    for (const d of r.layers ?? []) n += descriptorBytes(d);
  }
  return n;
}

/**
 * A record's key: a digest, or one of BuildKit's "random:" keys, which are
 * dropped when the graph is built (never written anywhere) and so only
 * need to be short and plain.
 */
function checkRecordKey(id: number, key: unknown): void {
  if (typeof key !== 'string' || key === '') throw invalidArgument(`record ${id} has no digest`, { reason: 'malformed-graph' });
  if (/^random:[A-Za-z0-9._:-]{1,128}$/.test(key)) return;
  checkDigest(key, `record ${id}`);
}

/**
 * Collects graph parts as they arrive and builds a CacheGraph once all are
 * in. Ids are resolved only then, so parts may come in any order. Rejects
 * duplicate ids, dangling references and loops with INVALID_ARGUMENT, and
 * oversize graphs with RESOURCE_EXHAUSTED while they arrive.
 */
export class GraphAssembler {
  private readonly records = new Map<number, { digest: string; hint?: WireHint | null }>();
  private readonly links: WireGraph['links'] = [];
  private readonly results: WireGraph['results'] = [];
  /** Input slots per record id (highest input index linked + 1), charged to the byte budget as they grow. */
  private readonly inputs = new Map<number, number>();
  private bytes = 0;

  constructor(private readonly limits: GraphLimits = DEFAULT_GRAPH_LIMITS) {}

  add(part: WireGraph): void {
    // Counted before anything of the part is kept: a graph over the budget is refused before it is built.
    this.bytes += wireGraphBytes(part) + this.inputSlotBytes(part);
    if (this.bytes > this.limits.maxGraphBytes) {
      throw resourceExhausted(`graph is larger than ${this.limits.maxGraphBytes} bytes (limits.maxGraphBytes)`, { reason: 'graph-too-large' });
    }
    for (const r of part.records ?? []) {
      if (this.records.has(r.id)) throw invalidArgument(`duplicate record id ${r.id}`, { reason: 'malformed-graph' });
      checkRecordKey(r.id, r.digest);
      this.records.set(r.id, { digest: r.digest, hint: r.hint });
    }
    // A loop, not push(...part.links): a spread passes every entry as an argument, and a
    // part with ~130 000 of them overflows the call stack.
    for (const l of part.links ?? []) this.links.push(l);
    for (const r of part.results ?? []) this.results.push(r);
    if (this.records.size > this.limits.maxRecords) {
      throw resourceExhausted(`graph has more than ${this.limits.maxRecords} records`, { reason: 'graph-too-large' });
    }
    if (this.results.length > this.limits.maxRecords) {
      throw resourceExhausted(`graph has more than ${this.limits.maxRecords} results`, { reason: 'graph-too-large' });
    }
    if (this.links.length > this.limits.maxLinks) {
      throw resourceExhausted(`graph has more than ${this.limits.maxLinks} links`, { reason: 'graph-too-large' });
    }
  }

  /**
   * A record gets a group for every input up to the highest index linked
   * (BuildKit's config lists them all), so one short link to input 4 095
   * makes 4 096 groups: about 80 000 such links, 2 MB on the wire, once took
   * gigabytes to build. Each new slot is charged INPUT_SLOT_BYTES, so the
   * graph's memory stays in proportion to maxGraphBytes whatever the indexes.
   */
  private inputSlotBytes(part: WireGraph): number {
    let slots = 0;
    for (const l of part.links ?? []) {
      // Checked as the part arrives: the index decides what it costs.
      if (!Number.isSafeInteger(l.input) || l.input < 0 || l.input >= this.limits.maxInputs) {
        throw invalidArgument(`link of record ${l.record_id} has input index ${l.input} (limit ${this.limits.maxInputs})`, { reason: 'malformed-graph' });
      }
      const had = this.inputs.get(l.record_id) ?? 0;
      if (l.input >= had) {
        slots += l.input + 1 - had;
        this.inputs.set(l.record_id, l.input + 1);
      }
    }
    return slots * INPUT_SLOT_BYTES;
  }

  build(): CacheGraph {
    const known = (id: number, what: string) => {
      if (!this.records.has(id)) throw invalidArgument(`${what} names unknown record id ${id}`, { reason: 'malformed-graph' });
    };
    for (const l of this.links) {
      known(l.record_id, 'link');
      known(l.src_id, 'link');
    }
    for (const r of this.results) known(r.record_id, 'result');
    this.checkLoops();
    const graph = new CacheGraph();
    const handles = new Map<number, RecordHandle>();
    // Creation order is id order: marshalling gives earlier records precedence
    // on ties, and a client numbering records as it creates them keeps its order.
    let sources = 0;
    const hint = (h: WireHint | null | undefined): Hint | undefined => {
      if (!h || h.source === NO_HINT) return undefined;
      sources = Math.max(sources, h.source + 1);
      return [h.source, h.index];
    };
    for (const id of [...this.records.keys()].sort((a, b) => a - b)) {
      const r = this.records.get(id)!;
      const handle = graph.add(r.digest);
      if (handle instanceof CacheNode) handle.hint = hint(r.hint);
      handles.set(id, handle);
    }
    for (const l of this.links) handles.get(l.record_id)!.linkFrom(handles.get(l.src_id)!, l.input, l.selector ?? '');
    for (const r of this.results) {
      if ((r.layers?.length ?? 0) > this.limits.maxLayersPerResult) {
        throw resourceExhausted(`result of record ${r.record_id} has more than ${this.limits.maxLayersPerResult} layers`, { reason: 'graph-too-large' });
      }
      const layers = (r.layers ?? []).map((d, i) => descriptorFromWire(d, `result of record ${r.record_id}, layer ${i}`));
      const hints = r.layer_hints ?? [];
      if (hints.length === layers.length) {
        chainKeys(layers).forEach((k, i) => {
          const h = hint(hints[i]);
          if (k && h && !graph.hintsView.has(k)) graph.layerHints.set(k, h);
        });
      }
      try {
        handles.get(r.record_id)!.addResult(r.created_at ?? '', layers);
      } catch (err) {
        throw invalidArgument(`result of record ${r.record_id}: ${(err as Error).message}`, { reason: 'malformed-graph', cause: err });
      }
    }
    // Sources parsed into this graph later must sort after the hinted ones.
    graph.reserveSources(sources);
    return graph;
  }

  /** Kahn's algorithm over src → record edges: whatever is never freed sits on a loop. */
  private checkLoops(): void {
    const indeg = new Map<number, number>();
    const out = new Map<number, number[]>();
    for (const id of this.records.keys()) indeg.set(id, 0);
    for (const l of this.links) {
      if (l.record_id === l.src_id) throw invalidArgument(`record ${l.record_id} links to itself`, { reason: 'looping-record' });
      indeg.set(l.record_id, indeg.get(l.record_id)! + 1);
      let o = out.get(l.src_id);
      if (!o) out.set(l.src_id, (o = []));
      o.push(l.record_id);
    }
    const queue = [...indeg].filter(([, d]) => d === 0).map(([id]) => id);
    let freed = 0;
    while (queue.length) {
      const id = queue.pop()!;
      freed++;
      for (const dep of out.get(id) ?? []) {
        const d = indeg.get(dep)! - 1;
        indeg.set(dep, d);
        if (d === 0) queue.push(dep);
      }
    }
    if (freed < this.records.size) {
      const stuck = [...indeg].find(([, d]) => d > 0)![0];
      throw invalidArgument(`invalid looping record: links form a cycle (record id ${stuck} is on or after one)`, { reason: 'looping-record' });
    }
  }
}

/**
 * Input slots an import's graph can honestly have: it was read from a config
 * of at most MAX_METADATA_BYTES, where every slot takes at least `[]`.
 */
const MAX_IMPORTED_INPUT_SLOTS = MAX_METADATA_BYTES / 2;

/**
 * Decodes a whole wire graph (import responses). Counts and sizes are
 * bounded by the message itself; input slots are not (one link to input
 * 1 000 000 is 1 000 000 groups), so they get the budget of the largest
 * config an import reads.
 */
export function graphFromWire(g: WireGraph | null | undefined, limits?: GraphLimits): CacheGraph {
  const budget = g ? wireGraphBytes(g) + MAX_IMPORTED_INPUT_SLOTS * INPUT_SLOT_BYTES : 0;
  const a = new GraphAssembler(limits ?? { maxRecords: Infinity, maxLinks: Infinity, maxLayersPerResult: Infinity, maxInputs: DEFAULT_GRAPH_LIMITS.maxInputs, maxGraphBytes: budget });
  if (g) a.add(g);
  return a.build();
}
