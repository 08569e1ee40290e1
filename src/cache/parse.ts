// Config -> graph, as BuildKit's cache/remotecache/v1/parse.go does it:
// every record is added before its inputs are followed, a record reached
// again while its inputs are being followed is a loop, and a result whose
// layer blob is not in the manifest is dropped rather than failing the import.
import { invalidArgument } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { CacheConfig } from './config.js';
import { CacheNode, type CacheGraph, type RecordHandle } from './graph.js';
import { chainKeys } from './marshal.js';

/** Layer descriptors available to the importer, keyed by digest (the manifest's layers). */
export type DescriptorMap = Map<string, Descriptor>;

/**
 * Follows parents from layer `idx` to the base. Returns undefined when a blob
 * is missing (the result is dropped); throws on loops and bad indexes.
 */
function remoteChain(cc: CacheConfig, idx: number, provider: DescriptorMap): { descs: Descriptor[]; indexes: number[] } | undefined {
  const visited = new Set<number>();
  const descs: Descriptor[] = [];
  const indexes: number[] = [];
  for (;;) {
    if (visited.has(idx)) throw invalidArgument('invalid looping layer', { reason: 'looping-layer' });
    visited.add(idx);
    if (idx < 0 || idx >= cc.layers.length) {
      throw invalidArgument(`invalid layer index ${idx}`, { reason: 'layer-index-out-of-range' });
    }
    const l = cc.layers[idx]!;
    const d = provider.get(l.blob);
    if (!d) return undefined;
    descs.push(d);
    indexes.push(idx);
    if (l.parent === -1) break;
    idx = l.parent;
  }
  return { descs: descs.reverse(), indexes: indexes.reverse() };
}

/**
 * Adds every record of `cc` to `graph`. Sources parsed earlier take
 * precedence when equal keys merge. Returns the handle of each record.
 */
export function parseConfig(graph: CacheGraph, cc: CacheConfig, provider: DescriptorMap): RecordHandle[] {
  const source = graph.newSource();
  const handles = new Array<RecordHandle | null | undefined>(cc.records.length); // null: being parsed
  const hintLayers = (descs: Descriptor[], indexes: number[]) => {
    const keys = chainKeys(descs);
    keys.forEach((k, i) => {
      if (k && !graph.hintsView.has(k)) graph.layerHints.set(k, [source, indexes[i]!]);
    });
  };

  interface Frame {
    idx: number;
    handle: RecordHandle;
    group: number;
    pos: number;
  }
  const begin = (idx: number): Frame => {
    if (idx < 0 || idx >= cc.records.length) throw invalidArgument(`invalid record ID: ${idx}`, { reason: 'record-index-out-of-range' });
    const handle = graph.add(cc.records[idx]!.digest);
    if (handle instanceof CacheNode) handle.hint = [source, idx];
    handles[idx] = null;
    return { idx, handle, group: 0, pos: 0 };
  };
  const finish = (f: Frame) => {
    const rec = cc.records[f.idx]!;
    for (const res of rec.results) {
      const chain = remoteChain(cc, res.layer, provider);
      if (chain) {
        f.handle.addResult(res.createdAt, chain.descs);
        hintLayers(chain.descs, chain.indexes);
      }
    }
    for (const res of rec.chains) {
      const descs: Descriptor[] = [];
      let complete = true;
      for (const li of res.layers) {
        if (li < 0 || li >= cc.layers.length) throw invalidArgument(`invalid layer index ${li}`, { reason: 'layer-index-out-of-range' });
        const d = provider.get(cc.layers[li]!.blob);
        if (!d) {
          complete = false;
          break;
        }
        descs.push(d);
      }
      if (complete) f.handle.addResult(res.createdAt, descs);
    }
    handles[f.idx] = f.handle;
  };

  for (let start = 0; start < cc.records.length; start++) {
    if (handles[start] !== undefined) continue;
    const stack: Frame[] = [begin(start)];
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      const groups = cc.records[f.idx]!.inputs;
      if (f.group >= groups.length) {
        finish(f);
        stack.pop();
        continue;
      }
      const group = groups[f.group]!;
      if (f.pos >= group.length) {
        f.group++;
        f.pos = 0;
        continue;
      }
      const inp = group[f.pos]!;
      const src = handles[inp.link];
      if (src === null) throw invalidArgument('invalid looping record', { reason: 'looping-record' });
      if (src === undefined) {
        stack.push(begin(inp.link));
        continue;
      }
      f.handle.linkFrom(src, f.group, inp.selector);
      f.pos++;
    }
  }
  return handles as RecordHandle[];
}
