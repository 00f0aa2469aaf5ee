// Number formats of ggml tensors: IEEE half and bfloat16 conversion, and the
// block formats q8_0, q4_0 and q4_K, as bytes <-> Float32Array. Decoding follows
// ggml's dequantisation exactly (every product here is exact in f32, so the
// values equal llama.cpp's bit for bit); encoding follows ggml's reference
// quantisers for q8_0/q4_0 and a simple min/max scheme for q4_K (tests only).
//
// Block layouts (little-endian; d, dmin are f16):
//   q8_0 (32 values, 34 bytes):  d, int8 q[32];                value = d * q
//   q4_0 (32 values, 18 bytes):  d, u8 nibbles[16];            value j = d * (nib - 8),
//                                 low nibble of byte i is value i, high nibble is value i + 16
//   q4_K (256 values, 144 bytes): d, dmin, u8 scales[12] (eight 6-bit scale/min pairs),
//                                 u8 nibbles[128]; sub-block s of 32: d*sc[s]*nib - dmin*m[s]
import type { DequantType, EncodeType } from './ggufTypes.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> f16 bits, round to nearest even (overflow to inf, NaN kept). */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: value / 2^-24, from the 24-bit significand shifted right.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry into the exponent is correct rounding
  return sign | h;
}

/** f16 bits -> number (exact). */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 -> bf16 bits, round to nearest even (NaN kept quiet). */
export function toBf16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBf16(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** Decodes `n` values of `type` from `bytes` (exactly the tensor's bytes). */
export function dequantize(type: DequantType, bytes: Uint8Array, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'f32': {
      // Aligned and owned by the caller: view it without a copy.
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      return Float32Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true));
    }
    case 'f16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = fromHalf(dv.getUint16(2 * i, true));
      return out;
    }
    case 'bf16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = fromBf16(dv.getUint16(2 * i, true));
      return out;
    }
    case 'q8_0': return decodeQ8_0(bytes, dv, n);
    case 'q4_0': return decodeQ4_0(bytes, dv, n);
    case 'q4_K': return decodeQ4K(bytes, dv, n);
  }
}

function decodeQ8_0(bytes: Uint8Array, dv: DataView, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let b = 0; b < n / 32; b++) {
    const at = b * 34, d = fromHalf(dv.getUint16(at, true));
    for (let j = 0; j < 32; j++) out[b * 32 + j] = d * ((bytes[at + 2 + j] << 24) >> 24);
  }
  return out;
}

function decodeQ4_0(bytes: Uint8Array, dv: DataView, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let b = 0; b < n / 32; b++) {
    const at = b * 18, d = fromHalf(dv.getUint16(at, true));
    for (let j = 0; j < 16; j++) {
      const q = bytes[at + 2 + j];
      out[b * 32 + j] = d * ((q & 0xf) - 8);
      out[b * 32 + j + 16] = d * ((q >>> 4) - 8);
    }
  }
  return out;
}

/** Scale and min of sub-block j (0..7) from q4_K's 12 packed bytes: 6 bits each. */
export function scaleMinK4(scales: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [scales[at + j] & 63, scales[at + j + 4] & 63];
  return [(scales[at + j + 4] & 0xf) | ((scales[at + j - 4] >>> 6) << 4), (scales[at + j + 4] >>> 4) | ((scales[at + j] >>> 6) << 4)];
}

function decodeQ4K(bytes: Uint8Array, dv: DataView, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let b = 0; b < n / 256; b++) {
    const at = b * 144, d = fromHalf(dv.getUint16(at, true)), dmin = fromHalf(dv.getUint16(at + 2, true));
    // Four 64-value chunks; chunk c uses nibbles [32c, 32c+32): low nibbles are sub-block 2c, high ones 2c+1.
    for (let c = 0; c < 4; c++) {
      const [sc0, m0] = scaleMinK4(bytes, at + 4, 2 * c), [sc1, m1] = scaleMinK4(bytes, at + 4, 2 * c + 1);
      const d0 = Math.fround(d * sc0), mm0 = Math.fround(dmin * m0), d1 = Math.fround(d * sc1), mm1 = Math.fround(dmin * m1);
      const o = b * 256 + c * 64, q = at + 16 + c * 32;
      for (let l = 0; l < 32; l++) {
        out[o + l] = d0 * (bytes[q + l] & 0xf) - mm0;
        out[o + 32 + l] = d1 * (bytes[q + l] >>> 4) - mm1;
      }
    }
  }
  return out;
}

/** Encodes values as `type`; q-types need a length that is a multiple of the block size. */
export function quantize(type: EncodeType | 'q4_K', values: Float32Array): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(type === 'f32' ? 4 * n : type === 'f16' || type === 'bf16' ? 2 * n
    : type === 'q8_0' ? (n / 32) * 34 : type === 'q4_0' ? (n / 32) * 18 : (n / 256) * 144);
  const dv = new DataView(out.buffer);
  switch (type) {
    case 'f32': for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i], true); break;
    case 'f16': for (let i = 0; i < n; i++) dv.setUint16(2 * i, toHalf(values[i]), true); break;
    case 'bf16': for (let i = 0; i < n; i++) dv.setUint16(2 * i, toBf16(values[i]), true); break;
    case 'q8_0': encodeQ8_0(values, out, dv); break;
    case 'q4_0': encodeQ4_0(values, out, dv); break;
    case 'q4_K': encodeQ4K(values, out, dv); break;
  }
  return out;
}

/** C's roundf: halves away from zero (Math.round rounds -2.5 to -2). */
const roundf = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));

// ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d), in f32 arithmetic.
function encodeQ8_0(x: Float32Array, out: Uint8Array, dv: DataView): void {
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, toHalf(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, roundf(Math.fround(x[b * 32 + j] * id)));
  }
}

// ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, so that
// value maps exactly to nibble 0; nib = min(15, trunc(x / d + 8.5)).
function encodeQ4_0(x: Float32Array, out: Uint8Array, dv: DataView): void {
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
    }
    const d = Math.fround(max / -8), id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 18, toHalf(d), true);
    const nib = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = nib(x[b * 32 + j]) | (nib(x[b * 32 + j + 16]) << 4);
  }
}

// A plain q4_K encoder (not ggml's iterative search): per sub-block of 32, min and
// range -> 6-bit scale and min against the super-block's f16 d and dmin.
function encodeQ4K(x: Float32Array, out: Uint8Array, dv: DataView): void {
  for (let b = 0; b < x.length / 256; b++) {
    const scale = new Float64Array(8), mins = new Float64Array(8);
    for (let s = 0; s < 8; s++) {
      let lo = 0, hi = -Infinity;
      for (let l = 0; l < 32; l++) { const v = x[b * 256 + s * 32 + l]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
      scale[s] = (hi - lo) / 15; mins[s] = -lo;
    }
    const d = fromHalf(toHalf(Math.max(...scale) / 63)), dmin = fromHalf(toHalf(Math.max(...mins) / 63));
    const at = b * 144;
    dv.setUint16(at, toHalf(d), true);
    dv.setUint16(at + 2, toHalf(dmin), true);
    const sc = scale.map((v) => (d ? Math.min(63, Math.round(v / d)) : 0));
    // Round mins up so that x + min stays >= 0 (no clipping at the bottom).
    const mn = mins.map((v) => (dmin ? Math.min(63, Math.ceil(v / dmin)) : 0));
    for (let j = 0; j < 4; j++) {
      out[at + 4 + j] = (sc[j] & 63) | ((sc[j + 4] >>> 4) << 6);
      out[at + 8 + j] = (mn[j] & 63) | ((mn[j + 4] >>> 4) << 6);
      out[at + 12 + j] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
    }
    for (let s = 0; s < 8; s++) {
      const ds = Math.fround(d * sc[s]), ms = Math.fround(dmin * mn[s]);
      for (let l = 0; l < 32; l++) {
        const q = ds ? Math.max(0, Math.min(15, Math.round((x[b * 256 + s * 32 + l] + ms) / ds))) : 0;
        const byte = at + 16 + (s >> 1) * 32 + l;
        out[byte] |= s & 1 ? q << 4 : q;
      }
    }
  }
}
