// safetensors: writer/reader round trips (F32, F16, BF16, any header order), the
// HF -> GGUF RoPE row reordering checked against what it means (HF's rotate-half
// RoPE on HF rows equals infer's adjacent-pair RoPE on reordered rows), the llama
// name mapping, and bad files: each a SafetensorsError naming file, offset, tensor.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromBf16, fromHalf, toBf16, toHalf } from '../../runtime/weights/ggufQuant.ts';
import { hfBinding, ropePermuteRows, ropeUnpermuteRows, SafetensorsWeights } from '../../runtime/weights/hfLlama.ts';
import { SafetensorsError, SafetensorsFile } from '../../runtime/weights/safetensors.ts';
import { writeSafetensors } from '../../runtime/weights/safetensorsWriter.ts';
import { rng } from '../gpu/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-st-'));
let n = 0;
const path = (stem = 'f') => join(dir, `${stem}${n++}.safetensors`);
const vals = (next: () => number, k: number) => Float32Array.from({ length: k }, () => next() * 4 - 2);

describe('reader and writer', () => {
  it('round-trip F32 exactly and F16/BF16 as their rounding, with metadata', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('F32', 'F16', 'BF16') as fc.Arbitrary<'F32' | 'F16' | 'BF16'>, fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 5 }), fc.integer(), (specs, seed) => {
      const next = rng(seed);
      const tensors = specs.map(([dtype, shape], i) => ({ name: `t${i}.weight`, dtype, shape, data: vals(next, shape.reduce((a, b) => a * b, 1)) }));
      const file = path();
      const layout = writeSafetensors(file, tensors, { format: 'pt' });
      expect(layout.dataOffset % 8).toBe(0);
      SafetensorsFile.with(file, (f) => {
        expect(f.metadata).toEqual({ format: 'pt' });
        expect(f.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
        for (const t of tensors) {
          const got = f.readFloat32(f.tensor(t.name)!);
          const want = t.dtype === 'F32' ? t.data : t.data.map((v) => (t.dtype === 'F16' ? fromHalf(toHalf(v)) : fromBf16(toBf16(v))));
          expect(Array.from(got)).toEqual(Array.from(want));
          expect(f.tensor(t.name)!.shape).toEqual(t.shape);
        }
      });
    }), { numRuns: 25 });
  });
});

describe('the RoPE row reordering', () => {
  // HF llama: rotate_half pairs (i, i + D/2); infer / GGUF: adjacent pairs (2i, 2i+1); angle pos * theta^(-2i/D) both.
  const rotate = (q: Float64Array, heads: number, D: number, pos: number, pair: (i: number) => [number, number]) => {
    const out = Float64Array.from(q);
    for (let h = 0; h < heads; h++) for (let i = 0; i < D / 2; i++) {
      const a = pos * Math.pow(10000, (-2 * i) / D), [x, y] = pair(i).map((j) => h * D + j);
      out[x] = q[x] * Math.cos(a) - q[y] * Math.sin(a);
      out[y] = q[x] * Math.sin(a) + q[y] * Math.cos(a);
    }
    return out;
  };
  const matvec = (w: Float32Array, x: Float32Array, rows: number, cols: number) =>
    Float64Array.from({ length: rows }, (_, r) => { let s = 0; for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c]; return s; });

  it('turns HF rotate-half RoPE into adjacent-pair RoPE (same q.k scores), and unpermute inverts it', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 }).map((d) => 2 * d), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 500 }), fc.integer(), (heads, D, cols, pos, seed) => {
      const next = rng(seed), rows = heads * D;
      const wq = vals(next, rows * cols), wk = vals(next, rows * cols), x = vals(next, cols);
      const neox = (i: number): [number, number] => [i, i + D / 2], adjacent = (i: number): [number, number] => [2 * i, 2 * i + 1];
      const qHf = rotate(matvec(wq, x, rows, cols), heads, D, pos, neox), kHf = rotate(matvec(wk, x, rows, cols), heads, D, 3, neox);
      const qG = rotate(matvec(ropePermuteRows(wq, rows, cols, heads), x, rows, cols), heads, D, pos, adjacent);
      const kG = rotate(matvec(ropePermuteRows(wk, rows, cols, heads), x, rows, cols), heads, D, 3, adjacent);
      for (let h = 0; h < heads; h++) {
        let a = 0, b = 0;
        for (let j = 0; j < D; j++) { a += qHf[h * D + j] * kHf[h * D + j]; b += qG[h * D + j] * kG[h * D + j]; }
        expect(Math.abs(a - b)).toBeLessThan(1e-9 * (1 + Math.abs(a)));
        // Row by row: GGUF row 2i + s is HF row s * D/2 + i.
        for (let i = 0; i < D / 2; i++) for (let s = 0; s < 2; s++) expect(qG[h * D + 2 * i + s]).toBeCloseTo(qHf[h * D + s * D / 2 + i], 9);
      }
      expect(Array.from(ropeUnpermuteRows(ropePermuteRows(wq, rows, cols, heads), rows, cols, heads))).toEqual(Array.from(wq));
    }), { numRuns: 40 });
  });

  it('maps llama and Mixtral names', () => {
    expect(hfBinding('token_embd')).toEqual({ name: 'model.embed_tokens.weight' });
    expect(hfBinding('output')).toEqual({ name: 'lm_head.weight' });
    expect(hfBinding('output_norm')).toEqual({ name: 'model.norm.weight' });
    expect(hfBinding('blk.3.attn_q')).toEqual({ name: 'model.layers.3.self_attn.q_proj.weight', permute: 'heads' });
    expect(hfBinding('blk.3.attn_k')).toEqual({ name: 'model.layers.3.self_attn.k_proj.weight', permute: 'kvHeads' });
    expect(hfBinding('blk.0.ffn_norm')).toEqual({ name: 'model.layers.0.post_attention_layernorm.weight' });
    expect(hfBinding('blk.1.ffn_gate_inp')).toEqual({ name: 'model.layers.1.block_sparse_moe.gate.weight' });
    expect(hfBinding('blk.1.ffn_down.5')).toEqual({ name: 'model.layers.1.block_sparse_moe.experts.5.w2.weight' });
    expect(hfBinding('blk.1.ffn_up_exps')).toMatchObject({ name: 'model.layers.1.block_sparse_moe.experts.{E}.w3.weight', stackExperts: true });
    expect(hfBinding('wq')).toBeUndefined();
  });

  it('stacks Mixtral experts for an ffn_*_exps param (expert e as slice e)', () => {
    const next = rng(5), experts = [vals(next, 6), vals(next, 6), vals(next, 6)];
    const file = path();
    writeSafetensors(file, experts.map((data, e) => ({ name: `model.layers.0.block_sparse_moe.experts.${e}.w1.weight`, dtype: 'F32' as const, shape: [2, 3], data })));
    const w = SafetensorsWeights.load(file, [{ name: 'blk.0.ffn_gate_exps', shape: [3, 2, 3] }], { heads: 1, kvHeads: 1 });
    expect(Array.from(w.get('blk.0.ffn_gate_exps'))).toEqual(experts.flatMap((e) => Array.from(e)));
  });
});

describe('bad files', () => {
  /** A valid two-tensor file: a F32 [2, 3], b F16 [4]. */
  const valid = () => {
    const file = path('ok');
    const layout = writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      { name: 'b', dtype: 'F16', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    ]);
    return { file, layout, bytes: new Uint8Array(readFileSync(file)) };
  };
  /** A file with `header` (JSON text) and `data` bytes. */
  const withHeader = (header: string, data = 64) => {
    const head = new TextEncoder().encode(header);
    const out = new Uint8Array(8 + head.length + data);
    new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
    out.set(head, 8);
    const file = path('bad');
    writeFileSync(file, out);
    return file;
  };
  /** Where the data section of a withHeader file starts. */
  const dataAt = (header: string) => 8 + new TextEncoder().encode(header).length;
  const expectError = (f: () => unknown, file: string, offset: number, re: RegExp, tensor?: string) => {
    let err: unknown;
    try { f(); } catch (e) { err = e; }
    expect(err, 'a SafetensorsError').toBeInstanceOf(SafetensorsError);
    const e = err as SafetensorsError;
    expect(e.message.startsWith(`${file}: byte ${offset}: `), e.message).toBe(true);
    expect(e.message).toMatch(re);
    expect(e.tensor).toBe(tensor);
  };
  const open = (file: string) => () => SafetensorsFile.open(file).close();

  it('truncated: shorter than the length prefix, the header, or the data', () => {
    const { bytes, layout } = valid();
    const cut = (k: number) => { const f = path('cut'); writeFileSync(f, bytes.subarray(0, k)); return f; };
    let f = cut(5);
    expectError(open(f), f, 0, /truncated: the file has 5 bytes/);
    f = cut(20);
    expectError(open(f), f, 0, new RegExp(`truncated: the header length says ${layout.headerLength} bytes`));
    f = cut(bytes.length - 3);
    expectError(open(f), f, layout.tensors[1].fileOffset, /run past the end of the file/, 'b');
  });

  it('bad header JSON (points at the byte), a non-object, a lying length', () => {
    const broken = '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},, }';
    let f = withHeader(broken);
    expectError(open(f), f, 8 + broken.indexOf(',,') + 1, /bad header JSON/);
    f = withHeader('[1, 2]');
    expectError(open(f), f, 8, /not an object of tensors/);
    f = withHeader('{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}');
    expectError(open(f), f, 8, /shape must be an array of non-negative integers/, 'a');
    f = withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}');
    expectError(open(f), f, 8, /data_offsets must be \[begin, end\]/, 'a');
    const big = path('big');
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
    writeFileSync(big, b);
    expectError(open(big), big, 0, /over the format's limit/);
  });

  it('offsets past the end, overlapping, or not matching the shape', () => {
    const past = '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [60, 76]}}';
    let f = withHeader(past);
    expectError(open(f), f, dataAt(past) + 60, /data_offsets \[60, 76\] run past the end of the file \(its data section has 64 bytes\)/, 'a');
    f = withHeader('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}');
    expectError(open(f), f, dataAt('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}') + 8, /data overlaps tensor a/, 'b');
    f = withHeader('{"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 16]}}');
    expectError(open(f), f, dataAt('{"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 16]}}'), /hold 16 bytes, but shape \[4\] of F16 needs 8/, 'a');
  });

  it('unknown dtype in the header; a known but unloadable one when bound', () => {
    let f = withHeader('{"a": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 4]}}');
    expectError(open(f), f, 8, /unknown dtype "Q4"/, 'a');
    f = withHeader('{"model.norm.weight": {"dtype": "I32", "shape": [4], "data_offsets": [0, 16]}}');
    const hl = dataAt('{"model.norm.weight": {"dtype": "I32", "shape": [4], "data_offsets": [0, 16]}}');
    expectError(() => SafetensorsWeights.load(f, [{ name: 'output_norm', shape: [4] }], { heads: 1, kvHeads: 1 }), f, hl, /dtype I32 cannot be loaded \(supported: F32, F16, BF16\)/, 'model.norm.weight');
  });

  it('missing tensor, wrong shape, unmappable param, heads that do not split the rows', () => {
    const { file, layout } = valid();
    const f = path('llama');
    const l = writeSafetensors(f, [
      { name: 'model.norm.weight', dtype: 'F32', shape: [6], data: new Float32Array(6).fill(1) },
      { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F32', shape: [6, 2], data: new Float32Array(12) },
    ]);
    const load = (params: { name: string; shape: number[] }[], heads = 1) => () => SafetensorsWeights.load(f, params, { heads, kvHeads: heads });
    expectError(load([{ name: 'output', shape: [6, 10] }]), f, 8, /missing: the spec's parameter output \[6, 10\] needs it, and none of the file's 2 tensors/, 'lm_head.weight');
    expectError(load([{ name: 'output_norm', shape: [5] }]), f, l.tensors[0].fileOffset, /has shape \[6\] \(HF order, \[out, in\]\), but the spec declares parameter output_norm as \[5\]/, 'model.norm.weight');
    expectError(load([{ name: 'blk.0.attn_q', shape: [6, 2] }]), f, l.tensors[1].fileOffset, /has shape \[6, 2\].*declares parameter blk\.0\.attn_q as \[6, 2\]/, 'model.layers.0.self_attn.q_proj.weight');
    expectError(load([{ name: 'blk.0.attn_q', shape: [2, 6] }], 2), f, l.tensors[1].fileOffset, /6 rows, which do not split into 2 heads of an even size/, 'model.layers.0.self_attn.q_proj.weight');
    expectError(load([{ name: 'wq', shape: [2] }]), f, 8, /parameter wq has no Hugging Face llama name/, 'wq');
    expect(layout.tensors).toHaveLength(2);
    expect(() => SafetensorsFile.with(file, (s) => s.readFloat32(s.tensor('a')!))).not.toThrow();
  });
});
