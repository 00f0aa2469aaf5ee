// Number formats of ggml tensors: IEEE half and bfloat16 conversion, and the
// block formats q8_0, q4_0, q4_K, q5_K and q6_K, as bytes <-> Float32Array. Decoding
// follows ggml's dequantisation in f32 arithmetic step for step (Math.fround where
// a product can round), so the values equal llama.cpp's bit for bit; the CPU
// engine reads these values (as f64), the same numbers the device kernels
// dequantise from the same blocks. Encoding follows ggml's reference quantisers
// for q8_0/q4_0 and simple min/max schemes for the K-quants (tests and fixtures:
// any valid block decodes the same way, however it was chosen).
//
// Block layouts: program/quant.ts (BLOCK_LAYOUT, K_SECTIONS), the one definition.
import { BLOCK_LAYOUT, K_SECTIONS } from '../../program/quant.ts';
import type { DequantType, EncodeType } from './ggufTypes.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> f16 bits, round to nearest even (overflow to inf, NaN kept). */
export function toHalf(v: number): number {
  f32[0] = v;
  return halfFromBits(u32[0]);
}

/** f32 bits -> f16 bits (toHalf's rounding; bulk encoders read the bits through a Uint32Array view). */
function halfFromBits(x: number): number {
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
    case 'q5_K': return decodeQ5K(bytes, dv, n);
    case 'q6_K': return decodeQ6K(bytes, dv, n);
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

const fr = Math.fround;

// q4_K and q5_K: d, dmin, then the body (12 scale bytes, [q5_K: 32 qh bytes], 128 qs bytes).
function decodeQ45K(bytes: Uint8Array, dv: DataView, n: number, five: boolean): Float32Array {
  const out = new Float32Array(n);
  const l = BLOCK_LAYOUT[five ? 'q5_K' : 'q4_K'], sec = K_SECTIONS.q5_K;
  for (let b = 0; b < n / 256; b++) {
    const at = b * l.bytes, d = fromHalf(dv.getUint16(at, true)), dmin = fromHalf(dv.getUint16(at + 2, true));
    const body = at + 4, qs = body + (five ? sec.qs : K_SECTIONS.q4_K.qs), qh = body + sec.qh;
    // Four 64-value chunks; chunk c uses qs[32c, 32c+32): low nibbles are sub-block 2c, high ones 2c+1.
    for (let c = 0; c < 4; c++) {
      for (let half = 0; half < 2; half++) {
        const s = 2 * c + half;
        const [sc, m] = scaleMinK4(bytes, body + K_SECTIONS.q4_K.scales, s);
        const ds = fr(d * sc), ms = fr(dmin * m);
        for (let j = 0; j < 32; j++) {
          const nib = half ? bytes[qs + 32 * c + j] >>> 4 : bytes[qs + 32 * c + j] & 0xf;
          const q = five && (bytes[qh + j] >>> s) & 1 ? nib + 16 : nib;
          out[b * 256 + 64 * c + 32 * half + j] = fr(ds * q - ms);
        }
      }
    }
  }
  return out;
}

function decodeQ4K(bytes: Uint8Array, dv: DataView, n: number): Float32Array { return decodeQ45K(bytes, dv, n, false); }
function decodeQ5K(bytes: Uint8Array, dv: DataView, n: number): Float32Array { return decodeQ45K(bytes, dv, n, true); }

// q6_K: ql[128], qh[64], int8 scales[16], d; ggml computes (d * scale) * q in f32.
function decodeQ6K(bytes: Uint8Array, dv: DataView, n: number): Float32Array {
  const out = new Float32Array(n);
  const l = BLOCK_LAYOUT.q6_K, sec = K_SECTIONS.q6_K;
  for (let b = 0; b < n / 256; b++) {
    const at = b * l.bytes, d = fromHalf(dv.getUint16(at + l.halvesAt, true));
    for (let h = 0; h < 2; h++) {
      for (let r = 0; r < 4; r++) {
        for (let j = 0; j < 32; j++) {
          const lo = bytes[at + sec.ql + 64 * h + 32 * (r % 2) + j];
          const nib = r < 2 ? lo & 0xf : lo >>> 4;
          const hi = (bytes[at + sec.qh + 32 * h + j] >>> (2 * r)) & 3;
          const sc = (bytes[at + sec.scales + 8 * h + 2 * r + (j >> 4)] << 24) >> 24;
          out[b * 256 + 128 * h + 32 * r + j] = fr(fr(d * sc) * ((nib | (hi << 4)) - 32));
        }
      }
    }
  }
  return out;
}

/** Encodes values as `type`; q-types need a length that is a multiple of the block size. */
export function quantize(type: EncodeType, values: Float32Array): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(type === 'f32' ? 4 * n : type === 'f16' || type === 'bf16' ? 2 * n
    : (n / BLOCK_LAYOUT[type].elements) * BLOCK_LAYOUT[type].bytes);
  const dv = new DataView(out.buffer);
  switch (type) {
    case 'f32': for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i], true); break;
    case 'f16': encodeHalves(values, out); break;
    case 'bf16': for (let i = 0; i < n; i++) dv.setUint16(2 * i, toBf16(values[i]), true); break;
    case 'q8_0': encodeQ8_0(values, out, dv); break;
    case 'q4_0': encodeQ4_0(values, out, dv); break;
    case 'q4_K': encodeQ45K(values, out, dv, false); break;
    case 'q5_K': encodeQ45K(values, out, dv, true); break;
    case 'q6_K': encodeQ6K(values, out, dv); break;
  }
  return out;
}

// Typed-array views are host-endian; GGUF is little-endian (runtime/weights/gguf.ts refuses big-endian hosts).
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** f16 halves of `x` into `out` (2 bytes each, fresh and so aligned), through bit views rather than a DataView per value. */
function encodeHalves(x: Float32Array, out: Uint8Array): void {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  if (!LITTLE_ENDIAN) {
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < x.length; i++) dv.setUint16(2 * i, halfFromBits(bits[i]), true);
    return;
  }
  const h = new Uint16Array(out.buffer, out.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) h[i] = halfFromBits(bits[i]);
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

// A plain q4_K / q5_K encoder (not ggml's iterative search): per sub-block of 32, min
// and range -> 6-bit scale and min against the super-block's f16 d and dmin.
function encodeQ45K(x: Float32Array, out: Uint8Array, dv: DataView, five: boolean): void {
  const l = BLOCK_LAYOUT[five ? 'q5_K' : 'q4_K'], levels = five ? 31 : 15;
  for (let b = 0; b < x.length / 256; b++) {
    const scale = new Float64Array(8), mins = new Float64Array(8);
    for (let s = 0; s < 8; s++) {
      let lo = 0, hi = -Infinity;
      for (let j = 0; j < 32; j++) { const v = x[b * 256 + s * 32 + j]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
      scale[s] = (hi - lo) / levels; mins[s] = -lo;
    }
    const d = fromHalf(toHalf(Math.max(...scale) / 63)), dmin = fromHalf(toHalf(Math.max(...mins) / 63));
    const at = b * l.bytes, body = at + 4;
    dv.setUint16(at, toHalf(d), true);
    dv.setUint16(at + 2, toHalf(dmin), true);
    const sc = scale.map((v) => (d ? Math.min(63, Math.round(v / d)) : 0));
    // Round mins up so that x + min stays >= 0 (no clipping at the bottom).
    const mn = mins.map((v) => (dmin ? Math.min(63, Math.ceil(v / dmin)) : 0));
    const s0 = body + K_SECTIONS.q4_K.scales;
    for (let j = 0; j < 4; j++) {
      out[s0 + j] = (sc[j] & 63) | ((sc[j + 4] >>> 4) << 6);
      out[s0 + 4 + j] = (mn[j] & 63) | ((mn[j + 4] >>> 4) << 6);
      out[s0 + 8 + j] = (sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4);
    }
    const qs = body + (five ? K_SECTIONS.q5_K.qs : K_SECTIONS.q4_K.qs), qh = body + K_SECTIONS.q5_K.qh;
    for (let s = 0; s < 8; s++) {
      const ds = fr(d * sc[s]), ms = fr(dmin * mn[s]);
      for (let j = 0; j < 32; j++) {
        const q = ds ? Math.max(0, Math.min(levels, Math.round((x[b * 256 + s * 32 + j] + ms) / ds))) : 0;
        out[qs + (s >> 1) * 32 + j] |= (s & 1 ? (q & 15) << 4 : q & 15);
        if (five && q > 15) out[qh + j] |= 1 << s;
      }
    }
  }
}

// A plain q6_K encoder: per 16 values a scale amax / 31 as int8 against d = max / 127,
// q = round(x / (d * scale)) + 32 clamped to 0..63.
function encodeQ6K(x: Float32Array, out: Uint8Array, dv: DataView): void {
  const l = BLOCK_LAYOUT.q6_K, sec = K_SECTIONS.q6_K;
  for (let b = 0; b < x.length / 256; b++) {
    const at = b * l.bytes, amax = new Float64Array(16);
    for (let g = 0; g < 16; g++) for (let j = 0; j < 16; j++) amax[g] = Math.max(amax[g], Math.abs(x[b * 256 + 16 * g + j]));
    const d = fromHalf(toHalf(Math.max(...amax) / 31 / 127));
    dv.setUint16(at + l.halvesAt, toHalf(d), true);
    // scales[8h + 2r + l/16] covers elements 128h + 32r + l: group g = 8h + 2r + (l >> 4).
    const sc = amax.map((v) => (d ? Math.max(-128, Math.min(127, Math.round(v / 31 / d))) : 0));
    for (let g = 0; g < 16; g++) dv.setInt8(at + sec.scales + g, sc[g]);
    for (let h = 0; h < 2; h++) {
      for (let r = 0; r < 4; r++) {
        for (let j = 0; j < 32; j++) {
          const ds = fr(d * sc[8 * h + 2 * r + (j >> 4)]);
          const v = x[b * 256 + 128 * h + 32 * r + j];
          const q = ds ? Math.max(0, Math.min(63, Math.round(v / ds) + 32)) : 32;
          out[at + sec.ql + 64 * h + 32 * (r % 2) + j] |= r < 2 ? q & 15 : (q & 15) << 4;
          out[at + sec.qh + 32 * h + j] |= (q >>> 4) << (2 * r);
        }
      }
    }
  }
}
