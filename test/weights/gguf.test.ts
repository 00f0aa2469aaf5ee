// GGUF round trips: every metadata value type (nested arrays included) and every
// tensor type through the writer and back through the reader; f16/bf16 rounding;
// the quantisation error bounds of q8_0, q4_0 and q4_K; q4_K decoding against a
// direct transcription of its block formula; alignment, v2 files, progress.
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GgufFile, GgufWeights } from '../../runtime/weights/gguf.ts';
import { fromBf16, fromHalf, quantize, dequantize, toBf16, toHalf } from '../../runtime/weights/ggufQuant.ts';
import type { GgufArray, GgufValue, NumberType } from '../../runtime/weights/ggufTypes.ts';
import { gv, writeGguf } from '../../runtime/weights/ggufWriter.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-gguf-'));
let n = 0;
const tmp = () => join(dir, `t${n++}.gguf`);

const NUMERIC: Record<NumberType, fc.Arbitrary<number>> = {
  u8: fc.integer({ min: 0, max: 255 }), i8: fc.integer({ min: -128, max: 127 }),
  u16: fc.integer({ min: 0, max: 65535 }), i16: fc.integer({ min: -32768, max: 32767 }),
  u32: fc.integer({ min: 0, max: 2 ** 32 - 1 }), i32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  f32: fc.float(), f64: fc.double(),
};
const CTOR = { u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array };
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const text = fc.string({ unit: 'grapheme', maxLength: 12 });

const scalar: fc.Arbitrary<GgufValue> = fc.oneof(
  ...Object.entries(NUMERIC).map(([type, a]) => a.map((value) => ({ type, value }) as GgufValue)),
  u64.map((value) => ({ type: 'u64', value }) as GgufValue), i64.map((value) => ({ type: 'i64', value }) as GgufValue),
  fc.boolean().map((value) => ({ type: 'bool', value }) as GgufValue), text.map((value) => ({ type: 'string', value }) as GgufValue),
);

const array: fc.Arbitrary<GgufArray> = fc.letrec<{ arr: GgufArray }>((tie) => ({
  arr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    ...Object.entries(NUMERIC).map(([t, a]) => fc.array(a, { maxLength: 6 }).map((xs) => ({ type: 'array', itemType: t, value: CTOR[t as NumberType].from(xs) }) as GgufArray)),
    fc.array(u64, { maxLength: 4 }).map((xs) => ({ type: 'array', itemType: 'u64', value: BigUint64Array.from(xs) }) as GgufArray),
    fc.array(i64, { maxLength: 4 }).map((xs) => ({ type: 'array', itemType: 'i64', value: BigInt64Array.from(xs) }) as GgufArray),
    fc.array(fc.boolean(), { maxLength: 6 }).map((value) => ({ type: 'array', itemType: 'bool', value }) as GgufArray),
    fc.array(text, { maxLength: 6 }).map((value) => ({ type: 'array', itemType: 'string', value }) as GgufArray),
    fc.array(tie('arr'), { maxLength: 3 }).map((value) => ({ type: 'array', itemType: 'array', value }) as GgufArray),
  ),
})).arr;

describe('GGUF metadata', () => {
  it('round-trips every value type, nested arrays included', () => {
    const entries = fc.uniqueArray(fc.tuple(text, fc.oneof(scalar, array)), { selector: ([k]) => k, maxLength: 8 })
      .filter((es) => es.every(([k]) => k !== 'general.alignment'));
    fc.assert(fc.property(entries, fc.constantFrom<2 | 3>(2, 3), (es, version) => {
      const file = tmp();
      writeGguf(file, es, [], { version });
      GgufFile.with(file, (g) => {
        expect(g.version).toBe(version);
        expect([...g.metadata.entries()]).toEqual(es);
      });
    }), { numRuns: 150 });
  });

  it('reads numbers and strings through typed accessors', () => {
    const file = tmp();
    writeGguf(file, [['a', gv.u64(5)], ['b', gv.f32(0.5)], ['s', gv.str('x')], ['arr', gv.i32s([1])]], []);
    GgufFile.with(file, (g) => {
      expect(g.number('a')).toBe(5);
      expect(g.number('b')).toBe(0.5);
      expect(g.string('s')).toBe('x');
      expect(g.number('missing')).toBeUndefined();
      expect(() => g.number('s')).toThrow(/metadata 's': expected a number, got a string/);
      expect(() => g.number('arr')).toThrow(/got an array of i32/);
    });
  });
});

describe('f16 and bf16', () => {
  it('convert every half exactly and round to nearest even', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = fromHalf(h);
      if (Number.isNaN(v)) expect(Number.isNaN(fromHalf(toHalf(v)))).toBe(true);
      else expect(toHalf(v)).toBe(h);
    }
    expect([1, -2, 65504, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 0.75 * 2 ** -24, 0.1, -0].map(toHalf)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 1, 0, 2, 1, 0x2e66, 0x8000]);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // tie to even (down)
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie to even (up)
  });

  it('bf16 keeps the top 16 bits, rounded to nearest even', () => {
    fc.assert(fc.property(fc.float({ noNaN: true }), (x) => {
      const y = fromBf16(toBf16(x));
      if (Math.abs(x) < 3.3e38) expect(Math.abs(y - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8 + 2 ** -134); // f32 subnormals: half of bf16's spacing there
    }));
    expect(toBf16(1)).toBe(0x3f80);
    expect(fromBf16(0xc040)).toBe(-3);
  });
});

/** The error bound of one block of ggml's reference quantisers (d stored as f16). */
function blockBounds(type: 'q8_0' | 'q4_0', x: Float32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    const amax = Math.max(...x.subarray(b * 32, b * 32 + 32).map(Math.abs));
    // q8_0: half a step of amax/127 plus d's f16 rounding times the largest q (127).
    // q4_0: a full step |d| = amax/8 at the clipped end (nibble 16 -> 15), plus f16 rounding of d times 8.
    const bound = type === 'q8_0' ? (amax / 127) * (0.5 + 127 * 2 ** -11) : (amax / 8) * (1 + 8 * 2 ** -11);
    out.push(bound * (1 + 1e-6) + 1e-37);
  }
  return out;
}

const values = (blocks: number, scale = 1) => fc.float32Array({ minLength: 32 * blocks, maxLength: 32 * blocks, noNaN: true, noDefaultInfinity: true, min: -1e4, max: 1e4 })
  .map((a) => a.map((v) => v * scale));

describe('tensors', () => {
  it('round-trip f32 exactly, f16/bf16 as their rounding, q8_0/q4_0 within their bounds', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), values(4), (rows, flat) => {
      const data = flat.subarray(0, 32 * rows);
      const file = tmp();
      const types = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const;
      writeGguf(file, [['general.architecture', gv.str('test')]], types.map((type) => ({ name: type, dims: [32, rows], type, data })));
      GgufFile.with(file, (g) => {
        const read = (name: string) => g.readFloat32(g.tensor(name)!);
        expect(read('f32')).toEqual(data);
        expect(read('f16')).toEqual(data.map((v) => fromHalf(toHalf(v))));
        expect(read('bf16')).toEqual(data.map((v) => fromBf16(toBf16(v))));
        for (const t of ['q8_0', 'q4_0'] as const) {
          const got = read(t), bounds = blockBounds(t, data);
          got.forEach((v, i) => expect(Math.abs(v - data[i]), `${t} value ${i}`).toBeLessThanOrEqual(bounds[i >> 5]));
          expect(g.readRaw(g.tensor(t)!)).toEqual(quantize(t, data)); // blocks stored as encoded
        }
      });
    }), { numRuns: 60 });
  });

  it('decode q8_0 and q4_0 blocks as ggml defines them', () => {
    const q8 = new Uint8Array(34);
    new DataView(q8.buffer).setUint16(0, toHalf(0.5), true);
    q8.set([1, 255, 127, 128], 2); // 1, -1, 127, -128
    expect(Array.from(dequantize('q8_0', q8, 32).subarray(0, 5))).toEqual([0.5, -0.5, 63.5, -64, 0]);
    const q4 = new Uint8Array(18);
    new DataView(q4.buffer).setUint16(0, toHalf(2), true);
    q4[2] = 0x0f; // value 0: nibble 15 -> 7 * 2; value 16: nibble 0 -> -8 * 2
    const d4 = dequantize('q4_0', q4, 32);
    expect([d4[0], d4[16], d4[1]]).toEqual([14, -16, -16]);
  });

  it('decode q4_K as its block formula says, and encode it within a sub-block step', () => {
    // Random blocks (finite d and dmin) against a direct transcription of ggml's dequantize_row_q4_K.
    fc.assert(fc.property(fc.uint8Array({ minLength: 144, maxLength: 144 }), fc.integer({ min: 0, max: 0x7bff }), fc.integer({ min: 0, max: 0x7bff }), (block, d, m) => {
      const dv = new DataView(block.buffer);
      dv.setUint16(0, d, true); dv.setUint16(2, m, true);
      const want = new Float32Array(256);
      const sc = block.subarray(4, 16);
      const get = (j: number) => j < 4 ? [sc[j] & 63, sc[j + 4] & 63] : [(sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)];
      for (let j = 0, y = 0, q = 16; j < 8; j += 2, q += 32) {
        const [s1, m1] = get(j), [s2, m2] = get(j + 1);
        for (let l = 0; l < 32; l++) want[y++] = Math.fround(fromHalf(d) * s1) * (block[q + l] & 0xf) - Math.fround(fromHalf(m) * m1);
        for (let l = 0; l < 32; l++) want[y++] = Math.fround(fromHalf(d) * s2) * (block[q + l] >> 4) - Math.fround(fromHalf(m) * m2);
      }
      expect(dequantize('q4_K', block, 256)).toEqual(want);
    }), { numRuns: 200 });
    fc.assert(fc.property(values(8, 1e-3), (x) => {
      const got = dequantize('q4_K', quantize('q4_K', x), 256);
      const range = Math.max(...x) - Math.min(0, ...x);
      // One nibble step of the widest sub-block (range/15), plus the 6-bit scale rounding.
      got.forEach((v, i) => expect(Math.abs(v - x[i])).toBeLessThanOrEqual(range / 15 + 1e-30));
    }), { numRuns: 100 });
  });
});

describe('layout and loading', () => {
  it('honours general.alignment and reads v2 files', () => {
    const file = tmp();
    const data = Float32Array.from({ length: 10 }, (_, i) => i);
    const layout = writeGguf(file, [], [{ name: 'a', dims: [3], type: 'f32', data: data.subarray(0, 3) }, { name: 'b', dims: [7], type: 'f32', data: data.subarray(3) }], { alignment: 64, version: 2 });
    GgufFile.with(file, (g) => {
      expect(g.alignment).toBe(64);
      expect(g.metadata.get('general.alignment')).toEqual({ type: 'u32', value: 64 });
      expect(g.dataOffset % 64).toBe(0);
      expect(g.tensors.map((t) => t.offset)).toEqual([0, 64]);
      expect(g.readFloat32(g.tensor('b')!)).toEqual(data.subarray(3));
      expect(layout.dataOffset).toBe(g.dataOffset);
    });
  });

  it('loads a spec\'s params with progress, by GGUF names, reading each tensor when asked', () => {
    const file = tmp();
    const t = (name: string, dims: number[]) => ({ name, dims, type: 'q8_0' as const, data: Float32Array.from({ length: dims[0] * (dims[1] ?? 1) }, (_, i) => Math.sin(i)) });
    writeGguf(file, [], [t('token_embd.weight', [32, 4]), t('blk.0.attn_q.weight', [64, 2]), t('unused.weight', [32])]);
    const seen: string[] = [];
    let last = { bytes: 0, totalBytes: -1 };
    const w = GgufWeights.load(file, [{ name: 'token_embd', shape: [32, 4] }, { name: 'blk.0.attn_q', shape: [64, 2] }], {
      onProgress: (p) => { seen.push(`${p.index}/${p.count} ${p.tensor}`); last = p; },
    });
    // Streamed: nothing is read until a tensor is asked for, then progress in the order asked.
    expect(seen).toEqual([]);
    expect(w.get('blk.0.attn_q')).toHaveLength(128);
    expect(w.getRaw('token_embd').bytes).toHaveLength(4 * 34);
    expect(seen).toEqual(['1/2 blk.0.attn_q.weight', '2/2 token_embd.weight']);
    expect(last.bytes).toBe(last.totalBytes);
    expect(last.totalBytes).toBe(4 * 34 + 4 * 34);
    expect(w.get('token_embd')[1]).toBeCloseTo(Math.sin(1), 2);
    expect(seen).toHaveLength(2); // a tensor read again is not progress
    // evict drops the f32 copy (read again from the file on the next get); release closes the file.
    const a = w.get('token_embd');
    w.evict('token_embd');
    expect(w.get('token_embd')).not.toBe(a);
    expect(w.get('token_embd')).toEqual(a);
    w.release();
    expect(() => w.getRaw('token_embd')).toThrow(/release\(\) was called/);
  });
});
