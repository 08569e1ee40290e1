import { describe, expect, it } from 'vitest';
import { BkError } from '../../src/errors.js';
import { decodeDescriptor, encodeDescriptor } from '../../src/oci/descriptor.js';
import { parseJsonBytes } from '../../src/oci/go-json.js';

const digest = `sha256:${'a'.repeat(64)}`;
const decode = (extra: string) => decodeDescriptor(parseJsonBytes(`{"mediaType":"x","digest":"${digest}","size":1${extra}}`, 'd'));

describe('descriptor data ([]byte, base64 as Go reads it)', () => {
  it('re-encodes embedded data as json.Marshal writes it: line breaks dropped, unused bits cleared', () => {
    expect(decode(',"data":"QQ=="').data).toBe('QQ==');
    expect(decode(',"data":"QR=="').data).toBe('QQ==');
    expect(decode(',"data":"QU\\r\\nJD"').data).toBe('QUJD');
    expect(encodeDescriptor(decode(',"data":"QU\\nJD"'))).toBe(`{"mediaType":"x","digest":"${digest}","size":1,"data":"QUJD"}`);
    expect(decode(',"data":null').data).toBeUndefined();
  });
  it('refuses data Go refuses (illegal base64 data) instead of keeping it as text', () => {
    for (const bad of ['"QQ"', '"Q"', '"QQ=A"', '"QQ==="', '"Q!=="', '"=QQQ"', '12', '["QQ=="]']) {
      expect(() => decode(`,"data":${bad}`), bad).toThrow(BkError);
    }
  });
});
