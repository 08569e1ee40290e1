// verified(): the digest and size check every read path shares.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { verified, VerifyStream } from '../../src/store/content.js';

const bytes = Buffer.from('verified content');
const desc = { mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
const read = async (r: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('verified', () => {
  it('passes matching content and fails a mismatch with DATA_LOSS', async () => {
    expect((await read(verified(Readable.from([bytes]), desc))).equals(bytes)).toBe(true);
    await expect(read(verified(Readable.from([Buffer.from('verified CONTENT')]), desc))).rejects.toMatchObject({ code: 'DATA_LOSS' });
  });

  it('does not verify twice what a stream already verifies, and still wraps anything else', () => {
    const once = verified(Readable.from([bytes]), desc);
    expect(once).toBeInstanceOf(VerifyStream);
    expect(verified(once, desc)).toBe(once);
    // Another descriptor or offset is a different check: wrapped again.
    const other = verified(once, { ...desc, size: desc.size + 1 });
    const offset = verified(once, desc, 3);
    expect(other).not.toBe(once);
    expect(offset).not.toBe(once);
    for (const s of [once, other, offset]) s.destroy();
  });
});
