// Content digests: "<algorithm>:<encoded>", as the OCI image spec defines them.
// https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests
import { createHash, type Hash } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import { invalidArgument } from '../errors.js';

export type Digest = string;

// Registered algorithms and the length of their hex encoding.
const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128, blake3: 64 };

const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
// Nearly every digest: exactly what the general checks below accept for sha256, in one test.
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

export interface ParsedDigest {
  algorithm: string;
  hex: string;
}

/** Parses and validates a digest; only registered algorithms are accepted. */
export function parseDigest(d: unknown): ParsedDigest {
  if (typeof d === 'string' && SHA256_RE.test(d)) return { algorithm: 'sha256', hex: d.slice(7) };
  if (typeof d !== 'string' || !DIGEST_RE.test(d)) {
    throw invalidArgument(`invalid digest ${JSON.stringify(d)}`, { reason: 'invalid-digest' });
  }
  const i = d.indexOf(':');
  const algorithm = d.slice(0, i);
  const hex = d.slice(i + 1);
  const len = ALGORITHMS[algorithm];
  if (len === undefined) throw invalidArgument(`unsupported digest algorithm ${algorithm}`, { reason: 'invalid-digest' });
  if (hex.length !== len || !/^[a-f0-9]+$/.test(hex)) {
    throw invalidArgument(`invalid ${algorithm} digest ${JSON.stringify(d)}`, { reason: 'invalid-digest' });
  }
  return { algorithm, hex };
}

export function isDigest(d: unknown): d is Digest {
  try {
    parseDigest(d);
    return true;
  } catch {
    return false;
  }
}

/** An incremental hasher with one interface over node's crypto and @noble/hashes. */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): Digest;
}

export function newHasher(algorithm = 'sha256'): Hasher {
  if (algorithm === 'sha256' || algorithm === 'sha512') {
    const h: Hash = createHash(algorithm);
    return {
      update: (c) => void h.update(c),
      digest: () => `${algorithm}:${h.digest('hex')}`,
    };
  }
  if (algorithm === 'blake3') {
    const h = blake3.create();
    return {
      update: (c) => void h.update(c),
      digest: () => `blake3:${Buffer.from(h.digest()).toString('hex')}`,
    };
  }
  throw invalidArgument(`unsupported digest algorithm ${algorithm}`, { reason: 'invalid-digest' });
}

export function digestBytes(data: Uint8Array | string, algorithm = 'sha256'): Digest {
  const h = newHasher(algorithm);
  h.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  return h.digest();
}

export function algorithmOf(d: Digest): string {
  return parseDigest(d).algorithm;
}
