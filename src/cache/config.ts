// The BuildKit cache config, application/vnd.buildkit.cacheconfig.v0, decoded
// and encoded exactly as Go's encoding/json treats BuildKit's structs
// (cache/remotecache/v1/spec.go). Field order and omitempty rules below follow
// those structs; a struct-typed time is never omitted, so the zero time is written.
import { invalidArgument } from '../errors.js';
import {
  goArray,
  goInt,
  goObject,
  goStr,
  goString,
  goStringMap,
  goStringMapField,
  goTime,
  GoStruct,
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

const LAYER_ANNOTATIONS = new GoStruct(['createdAt', 'mediaType', 'diffID', 'size', 'additional']);

function decodeLayerAnnotations(v: unknown, where: string): LayerAnnotations | undefined {
  const o = goObject(v, where);
  if (!o) return undefined;
  const [createdAt, mediaType, diffID, size, additional] = LAYER_ANNOTATIONS.read(o);
  const a: LayerAnnotations = { createdAt: goTime(createdAt, where, '.createdAt') };
  const mt = goStr(mediaType, where, '.mediaType');
  if (mt) a.mediaType = mt;
  const diff = goStr(diffID, where, '.diffID');
  if (diff) a.diffID = diff;
  const n = goInt(size, where, '.size');
  if (n) a.size = n;
  const add = goStringMapField(additional, where, '.additional');
  if (add && Object.keys(add).length) a.additional = add;
  return a;
}

const INPUT = new GoStruct(['selector', 'link']);

function decodeInputs(v: unknown, where: string): CacheInput[][] {
  return goArray(v, where).map((group, i) =>
    goArray(group, where, `[${i}]`).map((inp, j) => {
      const o = goObject(inp, where, `[${i}][${j}]`);
      if (!o) return { selector: '', link: 0 };
      const [selector, link] = INPUT.read(o);
      // Only a value of the wrong type needs the element's name, for the error.
      const w = typeof selector === 'string' && typeof link === 'number' ? '' : `${where}[${i}][${j}]`;
      return { selector: goStr(selector, w, '.selector'), link: goInt(link, w, '.link') };
    }),
  );
}

const RECORD = new GoStruct(['layers', 'chains', 'digest', 'inputs']);
const RESULT = new GoStruct(['layer', 'createdAt']);
const CHAIN = new GoStruct(['layers', 'createdAt']);

/** Decodes one record object; shared with the inline cache, which stores records alone. */
export function decodeRecord(v: unknown, where: string): CacheRecord {
  const o = goObject(v, where);
  const [layers, chains, digest, inputs] = o ? RECORD.read(o) : [];
  return {
    results: goArray(layers, where, '.layers').map((r, i) => {
      const ro = goObject(r, where, `.layers[${i}]`);
      const [layer, createdAt] = ro ? RESULT.read(ro) : [];
      return { layer: goInt(layer, where, `.layers[${i}].layer`), createdAt: goTime(createdAt, where, `.layers[${i}].createdAt`) };
    }),
    chains: goArray(chains, where, '.chains').map((c, i) => {
      const co = goObject(c, where, `.chains[${i}]`);
      const [layers, createdAt] = co ? CHAIN.read(co) : [];
      return {
        layers: goArray(layers, where, `.chains[${i}].layers`).map((n) => goInt(n, where, `.chains[${i}].layers`)),
        createdAt: goTime(createdAt, where, `.chains[${i}].createdAt`),
      };
    }),
    digest: goStr(digest, where, '.digest'),
    inputs: decodeInputs(inputs, `${where}.inputs`),
  };
}

const CONFIG = new GoStruct(['layers', 'records']);
const LAYER = new GoStruct(['blob', 'parent', 'annotations']);

/** Decodes config JSON with Go's semantics (absent ints are 0, unknown fields ignored). */
export function decodeCacheConfig(data: Uint8Array | string): CacheConfig {
  const doc = parseJsonBytes(data, 'cache config');
  if (!isObject(doc)) throw invalidArgument('cache config is not a JSON object', { reason: 'malformed-config' });
  const [layers, records] = CONFIG.read(doc);
  return {
    layers: goArray(layers, 'layers').map((l, i) => {
      const o = goObject(l, 'layers', `[${i}]`);
      const [blob, parent, annotations] = o ? LAYER.read(o) : [];
      const layer: CacheLayer = { blob: goStr(blob, 'layers', `[${i}].blob`), parent: goInt(parent, 'layers', `[${i}].parent`) };
      if (annotations !== undefined) {
        const ann = decodeLayerAnnotations(annotations, `layers[${i}].annotations`);
        if (ann) layer.annotations = ann;
      }
      return layer;
    }),
    records: goArray(records, 'records').map((r, i) => decodeRecord(r, `records[${i}]`)),
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
