// Image manifests and indexes: kind detection, decoding and Go-exact encoding.
// https://github.com/opencontainers/image-spec/blob/main/manifest.md
// https://github.com/opencontainers/image-spec/blob/main/image-index.md
import { invalidArgument } from '../errors.js';
import { decodeDescriptor, encodeDescriptor, type Descriptor } from './descriptor.js';
import { goArray, goField, goInt, goStr, goString, goStringMap, goStringMapField, isObject } from './go-json.js';
import { MT } from './media-types.js';

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/**
 * Decides whether manifest bytes are an index or an image manifest, as
 * BuildKit's imageutil.DetectManifestBlobMediaType does: the shape decides,
 * and a known `mediaType` refines it but must agree with the shape.
 */
export function detectManifestMediaType(doc: unknown): string {
  if (!isObject(doc)) throw invalidArgument('manifest is not a JSON object', { reason: 'malformed-manifest' });
  // json.RawMessage receives a literal null too, so null counts as present.
  const has = (k: string) => goField(doc, k) !== undefined;
  let mt: string = MT.dockerManifestList;
  if (has('config') || has('layers')) {
    mt = MT.dockerManifest;
    if (has('manifests')) {
      throw invalidArgument('invalid ambiguous manifest and manifest list: both "manifests" and "config"/"layers"', {
        reason: 'ambiguous-manifest',
      });
    }
  }
  const declared = goField(doc, 'mediaType');
  if (typeof declared === 'string') {
    if (declared === MT.dockerManifestList || declared === MT.ociIndex) {
      if (mt !== MT.dockerManifestList) {
        throw invalidArgument(`mediaType ${declared} does not match the manifest's contents`, { reason: 'mediatype-mismatch' });
      }
      mt = declared;
    } else if (declared === MT.dockerManifest || declared === MT.ociManifest) {
      if (mt === MT.dockerManifestList) {
        throw invalidArgument(`mediaType ${declared} does not match the manifest's contents`, { reason: 'mediatype-mismatch' });
      }
      mt = declared;
    }
  }
  return mt;
}

export function decodeIndex(doc: unknown): ImageIndex {
  if (!isObject(doc)) throw invalidArgument('index is not a JSON object', { reason: 'malformed-manifest' });
  const idx: ImageIndex = {
    schemaVersion: goInt(goField(doc, 'schemaVersion'), 'index.schemaVersion'),
    manifests: goArray(goField(doc, 'manifests'), 'index.manifests').map((m, i) => decodeDescriptor(m, `manifests[${i}]`)),
  };
  const mt = goStr(goField(doc, 'mediaType'), 'index.mediaType');
  if (mt) idx.mediaType = mt;
  const at = goStr(goField(doc, 'artifactType'), 'index.artifactType');
  if (at) idx.artifactType = at;
  const subject = goField(doc, 'subject');
  if (subject !== undefined && subject !== null) idx.subject = decodeDescriptor(subject, 'index.subject');
  const ann = goStringMapField(goField(doc, 'annotations'), 'index.annotations');
  if (ann && Object.keys(ann).length) idx.annotations = ann;
  return idx;
}

export function decodeManifest(doc: unknown): ImageManifest {
  if (!isObject(doc)) throw invalidArgument('manifest is not a JSON object', { reason: 'malformed-manifest' });
  const config = goField(doc, 'config');
  const m: ImageManifest = {
    schemaVersion: goInt(goField(doc, 'schemaVersion'), 'manifest.schemaVersion'),
    config:
      config === undefined || config === null
        ? { mediaType: '', digest: '', size: 0 }
        : decodeDescriptor(config, 'manifest.config'),
    layers: goArray(goField(doc, 'layers'), 'manifest.layers').map((l, i) => decodeDescriptor(l, `layers[${i}]`)),
  };
  const mt = goStr(goField(doc, 'mediaType'), 'manifest.mediaType');
  if (mt) m.mediaType = mt;
  const at = goStr(goField(doc, 'artifactType'), 'manifest.artifactType');
  if (at) m.artifactType = at;
  const subject = goField(doc, 'subject');
  if (subject !== undefined && subject !== null) m.subject = decodeDescriptor(subject, 'manifest.subject');
  const ann = goStringMapField(goField(doc, 'annotations'), 'manifest.annotations');
  if (ann && Object.keys(ann).length) m.annotations = ann;
  return m;
}

function encodeTail(s: string, v: { subject?: Descriptor; annotations?: Record<string, string> }): string {
  if (v.subject) s += `,"subject":${encodeDescriptor(v.subject)}`;
  if (v.annotations && Object.keys(v.annotations).length) s += `,"annotations":${goStringMap(v.annotations)}`;
  return s + '}';
}

/** Encodes like json.Marshal(ocispecs.Index). */
export function encodeIndex(idx: ImageIndex): string {
  let s = `{"schemaVersion":${idx.schemaVersion}`;
  if (idx.mediaType) s += `,"mediaType":${goString(idx.mediaType)}`;
  if (idx.artifactType) s += `,"artifactType":${goString(idx.artifactType)}`;
  s += `,"manifests":${idx.manifests.length ? `[${idx.manifests.map(encodeDescriptor).join(',')}]` : 'null'}`;
  return encodeTail(s, idx);
}

/** Encodes like json.Marshal(ocispecs.Manifest). */
export function encodeManifest(m: ImageManifest): string {
  let s = `{"schemaVersion":${m.schemaVersion}`;
  if (m.mediaType) s += `,"mediaType":${goString(m.mediaType)}`;
  if (m.artifactType) s += `,"artifactType":${goString(m.artifactType)}`;
  s += `,"config":${encodeDescriptor(m.config)}`;
  s += `,"layers":${m.layers.length ? `[${m.layers.map(encodeDescriptor).join(',')}]` : 'null'}`;
  return encodeTail(s, m);
}
