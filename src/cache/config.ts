// The BuildKit cache config, application/vnd.buildkit.cacheconfig.v0, decoded
// and encoded exactly as Go's encoding/json treats BuildKit's structs
// (cache/remotecache/v1/spec.go). Field order and omitempty rules below follow
// those structs; a struct-typed time is never omitted, so the zero time is written.
import { invalidArgument } from '../errors.js';
import {
  goArray,
  goField,
  goInt,
  goObject,
  goStr,
  goString,
  goStringMap,
  goStringMapField,
  goTime,
  isObject,
  parseJsonBytes,
} from '../oci/go-json.js';

export interface LayerAnnotations {
  mediaType?: string;
  diffID?: string;
  size?: number;
  createdAt: string;
  additional?: Record<string, string>;
}

export interface CacheLayer {
  blob: string;
  /** Index of the parent layer; -1 for none. An absent field decodes as 0. */
  parent: number;
  annotations?: LayerAnnotations;
}

export interface CacheResult {
  layer: number;
  createdAt: string;
}

export interface ChainedResult {
  layers: number[];
  createdAt: string;
}

export interface CacheInput {
  selector: string;
  link: number;
}

export interface CacheRecord {
  /** JSON "layers". */
  results: CacheResult[];
  /** JSON "chains". */
  chains: ChainedResult[];
  digest: string;
  inputs: CacheInput[][];
}

export interface CacheConfig {
  layers: CacheLayer[];
  records: CacheRecord[];
}

function decodeLayerAnnotations(v: unknown, where: string): LayerAnnotations | undefined {
  const o = goObject(v, where);
  if (!o) return undefined;
  const a: LayerAnnotations = { createdAt: goTime(goField(o, 'createdAt'), `${where}.createdAt`) };
  const mt = goStr(goField(o, 'mediaType'), `${where}.mediaType`);
  if (mt) a.mediaType = mt;
  const diff = goStr(goField(o, 'diffID'), `${where}.diffID`);
  if (diff) a.diffID = diff;
  const size = goInt(goField(o, 'size'), `${where}.size`);
  if (size) a.size = size;
  const add = goStringMapField(goField(o, 'additional'), `${where}.additional`);
  if (add && Object.keys(add).length) a.additional = add;
  return a;
}

function decodeInputs(v: unknown, where: string): CacheInput[][] {
  return goArray(v, where).map((group, i) =>
    goArray(group, `${where}[${i}]`).map((inp, j) => {
      const w = `${where}[${i}][${j}]`;
      const o = goObject(inp, w) ?? {};
      return { selector: goStr(goField(o, 'selector'), `${w}.selector`), link: goInt(goField(o, 'link'), `${w}.link`) };
    }),
  );
}

/** Decodes one record object; shared with the inline cache, which stores records alone. */
export function decodeRecord(v: unknown, where: string): CacheRecord {
  const o = goObject(v, where) ?? {};
  return {
    results: goArray(goField(o, 'layers'), `${where}.layers`).map((r, i) => {
      const ro = goObject(r, `${where}.layers[${i}]`) ?? {};
      return {
        layer: goInt(goField(ro, 'layer'), `${where}.layers[${i}].layer`),
        createdAt: goTime(goField(ro, 'createdAt'), `${where}.layers[${i}].createdAt`),
      };
    }),
    chains: goArray(goField(o, 'chains'), `${where}.chains`).map((c, i) => {
      const co = goObject(c, `${where}.chains[${i}]`) ?? {};
      return {
        layers: goArray(goField(co, 'layers'), `${where}.chains[${i}].layers`).map((n) => goInt(n, `${where}.chains[${i}].layers`)),
        createdAt: goTime(goField(co, 'createdAt'), `${where}.chains[${i}].createdAt`),
      };
    }),
    digest: goStr(goField(o, 'digest'), `${where}.digest`),
    inputs: decodeInputs(goField(o, 'inputs'), `${where}.inputs`),
  };
}

/** Decodes config JSON with Go's semantics (absent ints are 0, unknown fields ignored). */
export function decodeCacheConfig(data: Uint8Array | string): CacheConfig {
  const doc = parseJsonBytes(data, 'cache config');
  if (!isObject(doc)) throw invalidArgument('cache config is not a JSON object', { reason: 'malformed-config' });
  return {
    layers: goArray(goField(doc, 'layers'), 'layers').map((l, i) => {
      const o = goObject(l, `layers[${i}]`) ?? {};
      const layer: CacheLayer = {
        blob: goStr(goField(o, 'blob'), `layers[${i}].blob`),
        parent: goInt(goField(o, 'parent'), `layers[${i}].parent`),
      };
      const ann = decodeLayerAnnotations(goField(o, 'annotations'), `layers[${i}].annotations`);
      if (ann) layer.annotations = ann;
      return layer;
    }),
    records: goArray(goField(doc, 'records'), 'records').map((r, i) => decodeRecord(r, `records[${i}]`)),
  };
}

function encodeLayer(l: CacheLayer): string {
  let s = '{';
  const parts: string[] = [];
  if (l.blob) parts.push(`"blob":${goString(l.blob)}`);
  if (l.parent !== 0) parts.push(`"parent":${l.parent}`);
  if (l.annotations) {
    const a = l.annotations;
    const ap: string[] = [];
    if (a.mediaType) ap.push(`"mediaType":${goString(a.mediaType)}`);
    if (a.diffID) ap.push(`"diffID":${goString(a.diffID)}`);
    if (a.size) ap.push(`"size":${a.size}`);
    ap.push(`"createdAt":${goString(a.createdAt)}`);
    if (a.additional && Object.keys(a.additional).length) ap.push(`"additional":${goStringMap(a.additional)}`);
    parts.push(`"annotations":{${ap.join(',')}}`);
  }
  s += parts.join(',');
  return s + '}';
}

export function encodeRecord(r: CacheRecord): string {
  const parts: string[] = [];
  if (r.results.length) {
    parts.push(`"layers":[${r.results.map((x) => `{"layer":${x.layer},"createdAt":${goString(x.createdAt)}}`).join(',')}]`);
  }
  if (r.chains.length) {
    parts.push(
      `"chains":[${r.chains
        .map((c) => `{"layers":${c.layers.length ? `[${c.layers.join(',')}]` : 'null'},"createdAt":${goString(c.createdAt)}}`)
        .join(',')}]`,
    );
  }
  if (r.digest) parts.push(`"digest":${goString(r.digest)}`);
  if (r.inputs.length) {
    const groups = r.inputs.map(
      (g) =>
        `[${g.map((i) => (i.selector ? `{"selector":${goString(i.selector)},"link":${i.link}}` : `{"link":${i.link}}`)).join(',')}]`,
    );
    parts.push(`"inputs":[${groups.join(',')}]`);
  }
  return `{${parts.join(',')}}`;
}

/** Encodes like json.Marshal(CacheConfig): compact, BuildKit's field order. */
export function encodeCacheConfig(cc: CacheConfig): string {
  const parts: string[] = [];
  if (cc.layers.length) parts.push(`"layers":[${cc.layers.map(encodeLayer).join(',')}]`);
  if (cc.records.length) parts.push(`"records":[${cc.records.map(encodeRecord).join(',')}]`);
  return `{${parts.join(',')}}`;
}
