// K-quant blocks (q4_K, q5_K, q6_K): the decoder the CPU engine reads (ggufQuant.ts)
// equals, bit for bit on random blocks, an independent decoder written here from
// ggml's format (block_q4_K / block_q5_K / block_q6_K and dequantize_row_q*_K: the
// struct offsets written out by hand, ggml's loop structure with its pointer steps,
// f32 arithmetic in ggml's order). llama.cpp's own dequantised values are not
// observable through node-llama-cpp (it exposes tokens and logits, and its matmuls
// use dot products against q8_K-quantised activations, not dequantize_row), so the
// agreement with llama.cpp itself is checked on next-token distributions in
// test/agreement/llamacppQuant.test.ts. Also: the encoders stay within a
// quantisation step, and the device repacking (program/quant.ts) round-trips every
// block type at the file's size.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BLOCK_LAYOUT, deviceWords, packBlocks, packHalves, QUANT_TYPES, unpackBlocks, type QuantType } from '../../program/quant.ts';
import { dequantize, fromHalf, quantize } from '../../runtime/weights/ggufQuant.ts';

const fr = Math.fround;

/** ggml's get_scale_min_k4 over the 12 scale bytes at `q`. */
function scaleMin(b: Uint8Array, q: number, j: number): [number, number] {
  return j < 4 ? [b[q + j] & 63, b[q + j + 4] & 63]
    : [(b[q + j + 4] & 0xf) | ((b[q + j - 4] >> 6) << 4), (b[q + j + 4] >> 4) | ((b[q + j] >> 6) << 4)];
}

/** dequantize_row_q4_K / q5_K: d @0, dmin @2, scales @4, [q5_K: qh @16], qs @16 / @48. */
function refQ45K(b: Uint8Array, blocks: number, five: boolean): Float32Array {
  const y = new Float32Array(256 * blocks), size = five ? 176 : 144;
  let o = 0;
  for (let i = 0; i < blocks; i++) {
    const at = i * size, dv = new DataView(b.buffer, b.byteOffset + at);
    const d = fromHalf(dv.getUint16(0, true)), min = fromHalf(dv.getUint16(2, true));
    let ql = at + (five ? 48 : 16), is = 0, u1 = 1, u2 = 2;
    const qh = at + 16;
    for (let j = 0; j < 256; j += 64) {
      const [sc1, m1] = scaleMin(b, at + 4, is), [sc2, m2] = scaleMin(b, at + 4, is + 1);
      const d1 = fr(d * sc1), mm1 = fr(min * m1), d2 = fr(d * sc2), mm2 = fr(min * m2);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d1 * ((b[ql + l] & 0xf) + (five && b[qh + l] & u1 ? 16 : 0))) - mm1);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d2 * ((b[ql + l] >> 4) + (five && b[qh + l] & u2 ? 16 : 0))) - mm2);
      ql += 32; is += 2; u1 <<= 2; u2 <<= 2;
    }
  }
  return y;
}

/** dequantize_row_q6_K: ql @0, qh @128, int8 scales @192, d @208. */
function refQ6K(b: Uint8Array, blocks: number): Float32Array {
  const y = new Float32Array(256 * blocks);
  const i8 = (v: number) => (v << 24) >> 24;
  for (let i = 0; i < blocks; i++) {
    const at = i * 210, d = fromHalf(new DataView(b.buffer, b.byteOffset + at).getUint16(208, true));
    let ql = at, qh = at + 128, sc = at + 192, o = 256 * i;
    for (let n = 0; n < 256; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const q1 = i8((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
        const q2 = i8((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
        const q3 = i8((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
        const q4 = i8((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
        y[o + l] = fr(fr(d * i8(b[sc + is])) * q1);
        y[o + l + 32] = fr(fr(d * i8(b[sc + is + 2])) * q2);
        y[o + l + 64] = fr(fr(d * i8(b[sc + is + 4])) * q3);
        y[o + l + 96] = fr(fr(d * i8(b[sc + is + 6])) * q4);
      }
      o += 128; ql += 64; qh += 32; sc += 8;
    }
  }
  return y;
}

const REF: Record<'q4_K' | 'q5_K' | 'q6_K', (b: Uint8Array, blocks: number) => Float32Array> = {
  q4_K: (b, n) => refQ45K(b, n, false), q5_K: (b, n) => refQ45K(b, n, true), q6_K: refQ6K,
};

/** Random blocks: random bytes with finite f16 halves (any exponent, subnormals included). */
const blocksArb = (type: QuantType) => fc.integer({ min: 1, max: 4 }).chain((blocks) =>
  fc.tuple(fc.constant(blocks), fc.uint8Array({ minLength: blocks * BLOCK_LAYOUT[type].bytes, maxLength: blocks * BLOCK_LAYOUT[type].bytes }),
    fc.array(fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & 0x7c00) !== 0x7c00), { minLength: 2 * blocks, maxLength: 2 * blocks })))
  .map(([blocks, bytes, halves]) => {
    const l = BLOCK_LAYOUT[type], dv = new DataView(bytes.buffer);
    for (let b = 0; b < blocks; b++) for (let h = 0; h < l.halves; h++) dv.setUint16(b * l.bytes + l.halvesAt + 2 * h, halves[2 * b + h], true);
    return { blocks, bytes };
  });

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('K-quant dequantisation', () => {
  for (const type of ['q4_K', 'q5_K', 'q6_K'] as const) {
    it(`${type} equals ggml's dequantize_row_${type} bit for bit on random blocks`, () => {
      fc.assert(fc.property(blocksArb(type), ({ blocks, bytes }) => {
        expect(bits(dequantize(type, bytes, 256 * blocks))).toEqual(bits(REF[type](bytes, blocks)));
      }), { numRuns: 150 });
    });
  }

  // Encoders (tests and fixtures only): every value within one quantisation step of its
  // sub-block plus the rounding of the 6/8-bit scales (a loose, stated bound).
  for (const [type, levels] of [['q4_K', 15], ['q5_K', 31], ['q6_K', 31]] as const) {
    it(`${type} encodes within a step`, () => {
      fc.assert(fc.property(fc.array(fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true }), { minLength: 256, maxLength: 256 }), (xs) => {
        const x = Float32Array.from(xs);
        const got = dequantize(type, quantize(type, x), 256);
        const range = Math.max(...x.map(Math.abs)) * 2;
        got.forEach((v, i) => expect(Math.abs(v - x[i])).toBeLessThanOrEqual(2 * range / levels + 1e-6));
      }), { numRuns: 60 });
    });
  }
});

describe('device layout (program/quant.ts)', () => {
  it('packBlocks round-trips every block type and keeps the file size (+ at most 2 bytes)', () => {
    fc.assert(fc.property(fc.constantFrom(...QUANT_TYPES).chain((t) => fc.tuple(fc.constant(t), blocksArb(t))), ([type, { blocks, bytes }]) => {
      const elements = BLOCK_LAYOUT[type].elements * blocks;
      const packed = packBlocks(type, bytes, elements);
      expect(Array.from(unpackBlocks(type, packed, elements))).toEqual(Array.from(bytes));
      expect(packed.byteLength - bytes.length).toBeGreaterThanOrEqual(0);
      expect(packed.byteLength - bytes.length).toBeLessThanOrEqual(2);
    }), { numRuns: 100 });
  });

  it('f16 stays the file bytes, padded to 8 bytes', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50 }), (n) => {
      const raw = quantize('f16', Float32Array.from({ length: n }, (_, i) => i - 3.5));
      const packed = packHalves(raw, n);
      expect(packed.length).toBe(deviceWords('f16', n));
      expect(Array.from(new Uint8Array(packed.buffer).subarray(0, 2 * n))).toEqual(Array.from(raw));
      expect(packed.byteLength - raw.length).toBeLessThan(8);
    }));
  });
});
