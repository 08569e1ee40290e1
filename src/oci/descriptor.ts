// OCI content descriptors, decoded and encoded like image-spec's Go struct.
// https://github.com/opencontainers/image-spec/blob/main/descriptor.md
import { invalidArgument } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';
import {
  goArray,
  goBytes,
  goField,
  goInt,
  goObject,
  goStr,
  goString,
  goStringMap,
  goStringMapField,
  isObject,
} from './go-json.js';

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export const ANNOTATION_UNCOMPRESSED = 'containerd.io/uncompressed';
export const ANNOTATION_CREATED_AT = 'buildkit/createdat';
export const ANNOTATION_DESCRIPTION = 'buildkit/description';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

function decodePlatform(v: unknown, where: string): Platform | undefined {
  const o = goObject(v, where);
  if (!o) return undefined;
  const p: Platform = {
    architecture: goStr(goField(o, 'architecture'), `${where}.architecture`),
    os: goStr(goField(o, 'os'), `${where}.os`),
  };
  const osv = goStr(goField(o, 'os.version'), `${where}.os.version`);
  if (osv) p['os.version'] = osv;
  const feats = goArray(goField(o, 'os.features'), `${where}.os.features`).map((f) => goStr(f, `${where}.os.features`));
  if (feats.length) p['os.features'] = feats;
  const variant = goStr(goField(o, 'variant'), `${where}.variant`);
  if (variant) p.variant = variant;
  return p;
}

/**
 * Decodes a descriptor with Go's semantics: unknown fields are dropped,
 * absent ones are zero. The digest is validated because every use needs it.
 */
export function decodeDescriptor(v: unknown, where = 'descriptor'): Descriptor {
  if (!isObject(v)) throw invalidArgument(`${where} is not an object`, { reason: 'malformed-descriptor' });
  const d: Descriptor = {
    mediaType: goStr(goField(v, 'mediaType'), `${where}.mediaType`),
    digest: goStr(goField(v, 'digest'), `${where}.digest`),
    size: goInt(goField(v, 'size'), `${where}.size`),
  };
  parseDigest(d.digest);
  if (d.size < 0) throw invalidArgument(`${where}.size is negative`, { reason: 'malformed-descriptor' });
  const urls = goArray(goField(v, 'urls'), `${where}.urls`).map((u) => goStr(u, `${where}.urls`));
  if (urls.length) d.urls = urls;
  const ann = goStringMapField(goField(v, 'annotations'), `${where}.annotations`);
  if (ann && Object.keys(ann).length) d.annotations = ann;
  const data = goBytes(goField(v, 'data'), `${where}.data`);
  if (data) d.data = data;
  const platform = decodePlatform(goField(v, 'platform'), `${where}.platform`);
  if (platform) d.platform = platform;
  const at = goStr(goField(v, 'artifactType'), `${where}.artifactType`);
  if (at) d.artifactType = at;
  return d;
}

function encodePlatform(p: Platform): string {
  let s = `{"architecture":${goString(p.architecture)},"os":${goString(p.os)}`;
  if (p['os.version']) s += `,"os.version":${goString(p['os.version'])}`;
  if (p['os.features']?.length) s += `,"os.features":[${p['os.features'].map(goString).join(',')}]`;
  if (p.variant) s += `,"variant":${goString(p.variant)}`;
  return s + '}';
}

/** Encodes in image-spec's field order with its omitempty rules. */
export function encodeDescriptor(d: Descriptor): string {
  let s = '{';
  if (d.mediaType) s += `"mediaType":${goString(d.mediaType)},`;
  s += `"digest":${goString(d.digest)},"size":${d.size}`;
  if (d.urls?.length) s += `,"urls":[${d.urls.map(goString).join(',')}]`;
  if (d.annotations && Object.keys(d.annotations).length) s += `,"annotations":${goStringMap(d.annotations)}`;
  if (d.data) s += `,"data":${goString(d.data)}`;
  if (d.platform) s += `,"platform":${encodePlatform(d.platform)}`;
  if (d.artifactType) s += `,"artifactType":${goString(d.artifactType)}`;
  return s + '}';
}
