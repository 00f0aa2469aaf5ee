// A little-endian reader over an open file that fetches the header in chunks, so
// parsing a multi-gigabyte GGUF file reads only its header. It reads through a `readAt`
// function (node: readSync on a file; a browser: a copy out of bytes already fetched), so
// the parser is browser-safe. Every read checks the
// file size first: a truncated or lying file becomes a GgufError naming the byte
// offset and what was being read, never a short read, a huge allocation or a hang.
import { GgufError } from './ggufTypes.ts';

const CHUNK = 1 << 20;
// ignoreBOM: a string that starts with U+FEFF (a real vocabulary token) keeps it.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Copies up to `length` bytes at file position `position` into buf[offset..]; returns how many (0 at the end). */
export type ReadAt = (buf: Uint8Array, offset: number, length: number, position: number) => number;

/** readAt over bytes in memory. */
export const bytesReader = (bytes: Uint8Array): ReadAt => (buf, offset, length, position) => {
  const part = bytes.subarray(position, Math.min(bytes.length, position + length));
  buf.set(part, offset);
  return part.length;
};

export class FileCursor {
  pos = 0;
  /** What the parser is reading, for error messages ("metadata key 3", "tensor info 2"). */
  what = 'the header';
  private buf = new Uint8Array(0);
  private dv = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(private readonly readAt: ReadAt, readonly size: number, readonly file: string) {}

  fail(detail: string, at = this.pos, tensor?: string): never {
    throw new GgufError(this.file, at, detail, tensor);
  }

  get remaining(): number { return this.size - this.pos; }

  /** Makes bytes [pos, pos + n) available in the buffer and returns their index in it. */
  private need(n: number, what: string): number {
    if (n > this.remaining) {
      this.fail(`truncated: ${this.what}: ${what} needs ${n} bytes at byte ${this.pos}, but the file ends at byte ${this.size}`);
    }
    const end = this.pos + n;
    if (this.pos < this.bufStart || end > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, CHUNK), this.size - this.pos);
      const buf = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const r = this.readAt(buf, got, len - got, this.pos + got);
        if (r === 0) this.fail(`truncated: the file ended at byte ${this.pos + got} while reading ${this.what} (its size said ${this.size})`);
        got += r;
      }
      this.buf = buf;
      this.dv = new DataView(buf.buffer);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos = end;
    return at;
  }

  // need() may replace the buffer, so it runs before this.buf / this.dv are read.
  u8(what = 'a u8'): number { const at = this.need(1, what); return this.buf[at]; }
  i8(what = 'an i8'): number { const at = this.need(1, what); return this.dv.getInt8(at); }
  u16(what = 'a u16'): number { const at = this.need(2, what); return this.dv.getUint16(at, true); }
  i16(what = 'an i16'): number { const at = this.need(2, what); return this.dv.getInt16(at, true); }
  u32(what = 'a u32'): number { const at = this.need(4, what); return this.dv.getUint32(at, true); }
  i32(what = 'an i32'): number { const at = this.need(4, what); return this.dv.getInt32(at, true); }
  f32(what = 'an f32'): number { const at = this.need(4, what); return this.dv.getFloat32(at, true); }
  f64(what = 'an f64'): number { const at = this.need(8, what); return this.dv.getFloat64(at, true); }
  u64(what = 'a u64'): bigint { const at = this.need(8, what); return this.dv.getBigUint64(at, true); }
  i64(what = 'an i64'): bigint { const at = this.need(8, what); return this.dv.getBigInt64(at, true); }

  /** A u64 that must fit the rest of the file (a count or length): returned as a number. */
  count(what: string, bytesEach: number): number {
    const at = this.pos;
    const n = this.u64(what);
    const max = BigInt(Math.floor(this.remaining / Math.max(1, bytesEach)));
    if (n > max) {
      this.fail(`${this.what}: ${what} is ${n}, but at ${bytesEach} byte${bytesEach === 1 ? '' : 's'} each that needs more than the ${this.remaining} bytes left in the file (truncated or corrupt)`, at);
    }
    return Number(n);
  }

  /** gguf_string: u64 byte length, then UTF-8 bytes (no terminator). */
  string(what = 'a string'): string {
    const len = this.count(`the length of ${what}`, 1);
    const at = this.need(len, what);
    return utf8.decode(this.buf.subarray(at, at + len));
  }

  /** Copies n raw bytes (for typed numeric arrays). */
  bytes(n: number, what: string): Uint8Array {
    const at = this.need(n, what);
    return this.buf.slice(at, at + n);
  }
}
