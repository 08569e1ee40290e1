// OCI content descriptors, decoded and encoded like image-spec's Go struct.
// https://github.com/opencontainers/image-spec/blob/main/descriptor.md
import { invalidArgument } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';
import {
  goArray,
  goBytes,
  goInt,
  goObject,
  goStr,
  goString,
  goStringMap,
  goStringMapField,
  GoStruct,
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

const PLATFORM = new GoStruct(['architecture', 'os', 'os.version', 'os.features', 'variant']);

function decodePlatform(v: unknown, where: string): Platform | undefined {
  const o = goObject(v, where);
  if (!o) return undefined;
  const [arch, os, osv, features, variant] = PLATFORM.read(o);
  const p: Platform = { architecture: goStr(arch, where, '.architecture'), os: goStr(os, where, '.os') };
  const version = goStr(osv, where, '.os.version');
  if (version) p['os.version'] = version;
  const feats = goArray(features, where, '.os.features').map((f) => goStr(f, where, '.os.features'));
  if (feats.length) p['os.features'] = feats;
  const vt = goStr(variant, where, '.variant');
  if (vt) p.variant = vt;
  return p;
}

const DESCRIPTOR = new GoStruct(['mediaType', 'digest', 'size', 'urls', 'annotations', 'data', 'platform', 'artifactType']);

/**
 * Decodes a descriptor with Go's semantics: unknown fields are dropped,
 * absent ones are zero. The digest is validated because every use needs it.
 */
export function decodeDescriptor(v: unknown, where = 'descriptor'): Descriptor {
  if (!isObject(v)) throw invalidArgument(`${where} is not an object`, { reason: 'malformed-descriptor' });
  const [mediaType, digest, size, urls, annotations, data, platform, artifactType] = DESCRIPTOR.read(v);
  const d: Descriptor = {
    mediaType: goStr(mediaType, where, '.mediaType'),
    digest: goStr(digest, where, '.digest'),
    size: goInt(size, where, '.size'),
  };
  parseDigest(d.digest);
  if (d.size < 0) throw invalidArgument(`${where}.size is negative`, { reason: 'malformed-descriptor' });
  // The rare fields are absent from nearly every descriptor: skip their decoders then.
  if (urls !== undefined) {
    const list = goArray(urls, where, '.urls').map((u) => goStr(u, where, '.urls'));
    if (list.length) d.urls = list;
  }
  if (annotations !== undefined) {
    const ann = goStringMapField(annotations, where, '.annotations');
    if (ann && Object.keys(ann).length) d.annotations = ann;
  }
  if (data !== undefined) {
    const bytes = goBytes(data, where, '.data');
    if (bytes) d.data = bytes;
  }
  if (platform !== undefined) {
    const p = decodePlatform(platform, `${where}.platform`);
    if (p) d.platform = p;
  }
  const at = goStr(artifactType, where, '.artifactType');
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
