// A marshalled cache config in flat arrays, and its JSON written straight
// into bytes. Marshalling used to build the config as objects (a record, an
// inputs array, a group array and an input object per link) only for the
// encoder to read them once: at 20 000 records those objects were nearly half
// of what a trim allocated (5.9 of 12.4 MB), and they lived long enough to be
// copied by every young-generation collection. The objects are now built only for a
// caller that asks for them (FlatConfig.toConfig).
import { goString, goStringIsPlain } from '../oci/go-json.js';
import type { CacheConfig, CacheInput, CacheLayer, CacheRecord } from './config.js';

/**
 * The empty "layers" and "chains" of the records that have none, one frozen
 * array for all: most records of a large cache have no result and none has
 * chains. Frozen, so a caller that tried to add to one would fail loudly
 * rather than change every record.
 */
const NONE = Object.freeze([]) as unknown as never[];

/**
 * A cache config as marshal writes it: layers and records in their final
 * order, every index already the final one. Layers have no annotations and
 * records no "chains" (marshal writes neither).
 */
export interface FlatConfigParts {
  layerBlob: readonly string[];
  /** Parent layer index, -1 for none. */
  layerParent: Int32Array;
  digest: readonly string[];
  /** The record's result layer, -1 for none (a record has at most one result). */
  resultLayer: Int32Array;
  /** The result's creation time; read only where resultLayer >= 0. */
  createdAt: readonly string[];
  /** Record r's inputs are groups groupStart[r] .. groupStart[r + 1] - 1. */
  groupStart: Int32Array;
  /** Group g's links are linkStart[g] .. linkStart[g + 1] - 1, ordered by link, then selector. */
  linkStart: Int32Array;
  link: Int32Array;
  selector: readonly string[];
}

export class FlatConfig {
  constructor(readonly parts: FlatConfigParts) {}

  get records(): number {
    return this.parts.digest.length;
  }

  get layers(): number {
    return this.parts.layerBlob.length;
  }

  /** The layers' blobs, in config order. */
  get layerBlobs(): readonly string[] {
    return this.parts.layerBlob;
  }

  /** The config as objects (a new set each call). */
  toConfig(): CacheConfig {
    const p = this.parts;
    const layers = new Array<CacheLayer>(p.layerBlob.length);
    for (let i = 0; i < layers.length; i++) layers[i] = { blob: p.layerBlob[i]!, parent: p.layerParent[i]! };
    const records = new Array<CacheRecord>(p.digest.length);
    for (let r = 0; r < records.length; r++) {
      const inputs = new Array<CacheInput[]>(p.groupStart[r + 1]! - p.groupStart[r]!);
      for (let k = 0; k < inputs.length; k++) {
        const g = p.groupStart[r]! + k;
        const group = new Array<CacheInput>(p.linkStart[g + 1]! - p.linkStart[g]!);
        for (let m = 0; m < group.length; m++) {
          const l = p.linkStart[g]! + m;
          group[m] = { selector: p.selector[l]!, link: p.link[l]! };
        }
        inputs[k] = group;
      }
      const layer = p.resultLayer[r]!;
      records[r] = { results: layer === -1 ? NONE : [{ layer, createdAt: p.createdAt[r]! }], chains: NONE, digest: p.digest[r]!, inputs };
    }
    return { layers, records };
  }

  /**
   * The config's JSON as json.Marshal writes BuildKit's CacheConfig
   * (cache/remotecache/v1/spec.go; omitempty as encodeCacheConfig applies
   * it): the same bytes as encodeCacheConfig(this.toConfig()), without the
   * objects or the intermediate strings.
   */
  encode(): Buffer {
    const p = this.parts;
    const w = new JsonWriter(64 + p.layerBlob.length * 96 + p.digest.length * 160);
    w.ascii('{');
    if (p.layerBlob.length) {
      w.ascii('"layers":[');
      for (let i = 0; i < p.layerBlob.length; i++) {
        w.ascii(i ? ',{' : '{');
        const blob = p.layerBlob[i]!;
        if (blob) {
          w.ascii('"blob":');
          w.string(blob);
        }
        const parent = p.layerParent[i]!;
        if (parent !== 0) {
          w.ascii(blob ? ',"parent":' : '"parent":');
          w.int(parent);
        }
        w.ascii('}');
      }
      w.ascii(p.digest.length ? '],' : ']');
    }
    if (p.digest.length) {
      w.ascii('"records":[');
      for (let r = 0; r < p.digest.length; r++) {
        w.ascii(r ? ',{' : '{');
        let sep = false;
        const layer = p.resultLayer[r]!;
        if (layer !== -1) {
          w.ascii('"layers":[{"layer":');
          w.int(layer);
          w.ascii(',"createdAt":');
          w.string(p.createdAt[r]!);
          w.ascii('}]');
          sep = true;
        }
        const digest = p.digest[r]!;
        if (digest) {
          w.ascii(sep ? ',"digest":' : '"digest":');
          w.string(digest);
          sep = true;
        }
        const g0 = p.groupStart[r]!;
        const g1 = p.groupStart[r + 1]!;
        if (g1 > g0) {
          w.ascii(sep ? ',"inputs":[' : '"inputs":[');
          for (let g = g0; g < g1; g++) {
            w.ascii(g > g0 ? ',[' : '[');
            for (let l = p.linkStart[g]!; l < p.linkStart[g + 1]!; l++) {
              const selector = p.selector[l]!;
              w.ascii(l > p.linkStart[g]! ? ',{' : '{');
              if (selector) {
                w.ascii('"selector":');
                w.string(selector);
                w.ascii(',"link":');
              } else {
                w.ascii('"link":');
              }
              w.int(p.link[l]!);
              w.ascii('}');
            }
            w.ascii(']');
          }
          w.ascii(']');
        }
        w.ascii('}');
      }
      w.ascii(']');
    }
    w.ascii('}');
    return w.done();
  }
}

/**
 * Appends JSON to a growing byte array. Strings json.Marshal writes as they
 * are (goStringIsPlain: digests, times, most selectors) go in with one UTF-8
 * write; any other through goString.
 */
class JsonWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(estimate: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, estimate));
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Text known to be ASCII and to need no escaping (the encoder's own punctuation). */
  ascii(s: string): void {
    this.room(s.length);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
    this.pos = pos;
  }

  /** An index: a small integer, written without making a string of it. */
  int(n: number): void {
    if (!Number.isInteger(n) || n < -1 || n > 0x7fffffff) return this.ascii(String(n));
    this.room(11);
    const buf = this.buf;
    if (n < 0) {
      buf[this.pos++] = 0x2d;
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let pos = this.pos + digits;
    this.pos = pos;
    do {
      buf[--pos] = 0x30 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }

  string(s: string): void {
    if (!goStringIsPlain(s)) {
      const text = goString(s);
      this.room(Buffer.byteLength(text, 'utf8'));
      this.pos += this.buf.write(text, this.pos, 'utf8');
      return;
    }
    // At most 3 bytes a code unit: a plain string has no surrogates.
    this.room(s.length * 3 + 2);
    const buf = this.buf;
    buf[this.pos++] = 0x22;
    this.pos += buf.write(s, this.pos, 'utf8');
    buf[this.pos++] = 0x22;
  }

  done(): Buffer {
    // The estimate or a doubling may have left much of the buffer unused: copy rather than keep it alive.
    return this.buf.length - this.pos > 1 << 20 ? Buffer.from(this.buf.subarray(0, this.pos)) : this.buf.subarray(0, this.pos);
  }
}
