// The digest of a chunked upload, carried from request to request in the
// sealed upload state, so that whichever daemon receives the final PUT
// checks the digest before it asks the upstream to commit. Node's crypto
// cannot export a hash in progress; hash-wasm can (save()/load(), a few
// hundred bytes for SHA-2, ~1.9 KiB for BLAKE3), at a CPU cost measured in
// `npm run bench`. One-shot uploads (the whole body in one PUT) keep node's
// crypto (holdbackVerified, src/store/registry/source.ts): nothing to resume there.
//
// The algorithm must be known when the first byte passes, and a client says
// which only at the end (PUT ?digest=). sha256 is what every client pushes;
// a client pushing another algorithm in chunks says so when it opens the
// upload, with the distribution spec's optional parameter
// (https://github.com/opencontainers/distribution-spec/pull/543):
// POST /v2/<name>/blobs/uploads/?digest-algorithm=sha512 (or blake3).
// A final digest in another algorithm than the state's cannot be checked,
// and is refused (uploads.ts), never committed unverified.
import { Transform, type TransformCallback } from 'node:stream';
import { createBLAKE3, createSHA256, createSHA512, type IHasher } from 'hash-wasm';
import { BkError } from '../errors.js';
import type { Hasher } from '../oci/digest.js';
import { holdErrors } from '../store/content.js';

const MAKERS: Record<string, () => Promise<IHasher>> = { sha256: createSHA256, sha512: createSHA512, blake3: createBLAKE3 };

export const RESUMABLE_ALGORITHMS: readonly string[] = Object.keys(MAKERS);

/** Sealed with an upload: the algorithm, and hash-wasm's saved state (base64) once a byte was hashed. */
export interface HashState {
  alg: string;
  s?: string;
}

/** What a state that cannot be verified any more is refused with (BLOB_UPLOAD_INVALID). */
export function unverifiable(why: string): BkError {
  return new BkError('FAILED_PRECONDITION', `${why}: the gateway cannot verify this upload's digest; start the upload again`, { reason: 'upload-unverifiable' });
}

export interface ResumableHasher extends Hasher {
  save(): HashState;
}

/** A hasher that continues `st` (a fresh one when `st.s` is absent). */
export async function resumeHash(st: HashState): Promise<ResumableHasher> {
  const make = MAKERS[st.alg];
  if (!make) throw unverifiable(`hash algorithm ${JSON.stringify(st.alg)} cannot be resumed`);
  const h = await make();
  h.init();
  if (st.s !== undefined) {
    try {
      h.load(Buffer.from(st.s, 'base64'));
    } catch {
      throw unverifiable('the carried hash state does not load');
    }
  }
  return {
    update: (c) => void h.update(c),
    digest: () => `${st.alg}:${h.digest('hex')}`,
    save: () => ({ alg: st.alg, s: Buffer.from(h.save()).toString('base64') }),
  };
}

/**
 * Hashes and counts the bytes passing to the upstream, unchanged. `seen` is
 * what was handed on; the caller compares it with what the upstream reports
 * holding before it trusts save().
 */
export class HashingPass extends Transform {
  seen = 0;

  constructor(readonly hasher: ResumableHasher) {
    super();
    holdErrors(this);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    this.seen += chunk.length;
    cb(null, chunk);
  }
}
