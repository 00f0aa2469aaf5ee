// The WGSL backend without a GPU: every kernel kind renders, deterministically, with
// exactly the bindings the contract names (plus the step uniform), valid number
// literals, and sane launch shapes. The GPU tests (test/gpu/kernels.test.ts) check
// what the kernels compute.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickVariant } from '../../backends/backend.ts';
import { CUDA_DIALECT, renderExpr, unaryFormula, WGSL_DIALECT } from '../../backends/cstyle/expr.ts';
import { floatText, uintText } from '../../backends/cstyle/literal.ts';
import { renderAll, wgslBackend } from '../../backends/wgsl/render.ts';
import { UNARY_FNS } from '../../compiler/ir/index.ts';
import { runPipeline } from '../../compiler/pipeline.ts';
import { bindingNames, kernelKey, type ElementwiseExpr, type KernelSpec } from '../../program/kernels.ts';
import { schedule } from '../../compiler/schedule.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';

const x0: ElementwiseExpr = { kind: 'input', index: 0 };
const SPECS: KernelSpec[] = [
  { kind: 'embed', dim: 64, vocab: 100 },
  { kind: 'rmsnorm', dim: 4096, eps: 1e-5 },
  { kind: 'rmsnorm', dim: 7, eps: 1e-6 },
  ...(['none', 'rmsnorm', 'silu_mul'] as const).flatMap((prologue) => [false, true].flatMap((residual) =>
    [[4096, 4096], [13, 5]].map(([K, N]): KernelSpec => ({ kind: 'matmul', K, N, prologue, eps: 1e-5, residual })))),
  { kind: 'rope', heads: 8, headDim: 128, theta: 500000 },
  { kind: 'rope', heads: 1, headDim: 2, theta: 10000 },
  ...(['f32', 'f16', 'int8', 'int4'] as const).flatMap((dtype): KernelSpec[] => [
    { kind: 'kv_append', kvHeads: 2, headDim: 64, pageSize: 16, dtype, rope: 10000 },
    { kind: 'kv_append', kvHeads: 1, headDim: 6, pageSize: 4096, dtype, rope: null },
    { kind: 'attention', heads: 32, kvHeads: 8, headDim: 128, pageSize: 16, dtype, scale: 0.08838834764831845, window: null, causal: true, splits: 1 },
    { kind: 'attention', heads: 4, kvHeads: 1, headDim: 6, pageSize: 1, dtype, scale: 0.4, window: 3, causal: false, splits: 8 },
  ]),
  { kind: 'attention', heads: 2, kvHeads: 2, headDim: 256, pageSize: 64, dtype: 'f32', scale: 0.0625, window: 8, causal: true, splits: 32 },
  { kind: 'attention_merge', heads: 32, headDim: 128, splits: 4 },
  { kind: 'elementwise', width: 11, inputs: 2, expr: { kind: 'binary', fn: 'mul', left: { kind: 'unary', fn: 'silu', arg: x0 }, right: { kind: 'input', index: 1 } } },
  { kind: 'elementwise', width: 3, inputs: 1, expr: { kind: 'binary', fn: 'div', left: x0, right: { kind: 'const', value: 1e-7 } } },
];

describe('wgsl render', () => {
  it.each(SPECS.map((s) => [kernelKey(s), s] as const))('%s', (key, spec) => {
    const variants = wgslBackend.render(key, spec);
    expect(variants.length).toBeGreaterThan(0);
    // Deterministic: same spec, same text.
    expect(wgslBackend.render(key, spec)).toEqual(variants);
    expect(new Set(variants.map((v) => v.key)).size).toBe(variants.length);
    for (const v of variants) {
      expect(v.key.startsWith(key)).toBe(true);
      expect(v.entry).toBe('main');
      expect(v.source).toMatch(/@compute @workgroup_size\([^)]*\)\s*fn main\(/);
      expect(v.source).not.toMatch(/NaN|undefined|Infinity|\[object|\{\{|\}\}/);
      // The binding list is the contract's names, then the step uniform, declared in that order.
      expect(v.bindings.map((b) => b.name)).toEqual([...bindingNames(spec), 'step']);
      expect(v.bindings.at(-1)!.access).toBe('uniform');
      v.bindings.forEach((b, i) => {
        const space = b.access === 'uniform' ? 'uniform' : `storage, ${b.access}`;
        expect(v.source).toContain(`@group(0) @binding(${i}) var<${space}> ${b.name}:`);
      });
      expect(v.source.match(/@binding\(/g)!.length).toBe(v.bindings.length);
      // Launch shapes within WebGPU's default limits.
      expect(v.workgroup[0] * v.workgroup[1] * v.workgroup[2]).toBeLessThanOrEqual(256);
      for (const g of v.grid) expect(Number.isInteger(g.groups) && g.groups > 0 && g.tokensPerGroup >= 0).toBe(true);
    }
  });

  it('matmul has a GEMV for decode, a 4-token GEMV for small batches and a tiled kernel from 8 tokens', () => {
    const spec: KernelSpec = { kind: 'matmul', K: 64, N: 64, prologue: 'none', eps: 0, residual: false };
    const variants = wgslBackend.render(kernelKey(spec), spec);
    expect(variants.map((v) => [v.key.split('.').at(-1), v.minTokens])).toEqual([['gemv', 1], ['gemv4', 2], ['tiled', 8]]);
    expect(pickVariant(variants, 1).key).toMatch(/\.gemv$/);
    expect(pickVariant(variants, 2).key).toMatch(/\.gemv4$/);
    expect(pickVariant(variants, 7).key).toMatch(/\.gemv4$/);
    expect(pickVariant(variants, 8).key).toMatch(/\.tiled$/);
    // vec4 reads only where K splits into whole vec4s.
    expect(variants[0].source).toContain('var<storage, read> w: array<vec4<f32>>');
    const odd = wgslBackend.render('odd', { ...spec, K: 65 })[0];
    expect(odd.source).toContain('var<storage, read> w: array<f32>');
  });

  it('renders every kernel of a fused dense llama program', () => {
    const g = denseLlama({ vocab: 50, dim: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, ffn: 48 });
    const program = schedule(runPipeline(g).graph);
    const all = renderAll(program.kernels);
    expect([...all.keys()]).toEqual(program.kernels.map((k) => k.key));
    const kinds = new Set(program.kernels.map((k) => k.spec.kind));
    for (const kind of ['embed', 'matmul', 'rope', 'kv_append', 'attention']) expect(kinds.has(kind as KernelSpec['kind'])).toBe(true);
  });

  it('an embed kernel, in full', () => {
    expect(wgslBackend.render('embed_dim4_vocab3', { kind: 'embed', dim: 4, vocab: 3 })[0].source).toMatchInlineSnapshot(`
      "// embed kernel, rendered by infer's WGSL backend.
      // The runtime's per-step uniform: the number of tokens in this step.
      struct Step { tokens: u32, part: u32, pad1: u32, pad2: u32 }
      @group(0) @binding(0) var<storage, read> tokens: array<i32>;
      @group(0) @binding(1) var<storage, read> table: array<f32>;
      @group(0) @binding(2) var<storage, read_write> out: array<f32>;
      @group(0) @binding(3) var<uniform> step: Step;

      const DIM: u32 = 4u;
      const VOCAB: u32 = 3u;

      // One invocation per output element: x walks the row, y is the token.
      @compute @workgroup_size(64u)
      fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
        let t = gid.y;
        let d = gid.x;
        if (t >= step.tokens || d >= DIM) { return; }
        let id = tokens[t];
        // An id outside the vocabulary gives a zero row rather than reading past the table.
        var v = 0.0;
        if (id >= 0i && u32(id) < VOCAB) { v = table[u32(id) * DIM + d]; }
        out[t * DIM + d] = v;
      }
      "
    `);
  });

  it('renders the parts of a split weight or table as one source per width: the offset is the step uniform\'s `part`, not a constant', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 64 }).map((k) => 4 * k), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 2, max: 5 }), fc.constantFrom('none', 'rmsnorm'), fc.boolean(),
      fc.constantFrom<undefined | 'q8_0' | 'q4_0' | 'f16'>(undefined, 'q8_0', 'q4_0', 'f16'),
      (k, N, parts, prologue, residual, wtype) => {
        const K = wtype === 'q8_0' || wtype === 'q4_0' ? 8 * k : k;
        const sources = (specs: KernelSpec[]) => new Set(specs.flatMap((s) => wgslBackend.render(kernelKey(s), s).map((r) => `${r.minTokens}|${r.source}`)));
        const offsets = Array.from({ length: parts }, (_, i) => i * N);
        const mm = offsets.map((colOffset): KernelSpec => ({ kind: 'matmul', K, N, prologue: prologue as 'none' | 'rmsnorm', eps: 1e-5, residual, ...(wtype ? { wtype } : {}), colOffset, outCols: parts * N }));
        const em = offsets.map((idOffset): KernelSpec => ({ kind: 'embed', dim: K, vocab: N, ...(wtype ? { wtype } : {}), idOffset, vocabTotal: parts * N }));
        // One source per variant, however many parts; the offset still validated against the width.
        expect(sources(mm).size).toBe(wgslBackend.render('m', mm[0]).length);
        expect(sources(em).size).toBe(1);
        expect(() => wgslBackend.render('m', { ...(mm[0] as Extract<KernelSpec, { kind: 'matmul' }>), colOffset: parts * N - N + 1 })).toThrow(/outside rows/);
        expect(() => wgslBackend.render('e', { ...(em[0] as Extract<KernelSpec, { kind: 'embed' }>), idOffset: -1 })).toThrow(/outside a vocabulary/);
      }), { numRuns: 40 });
  });

  it('rejects specs it cannot render, with the reason', () => {
    const att: KernelSpec = { kind: 'attention', heads: 6, kvHeads: 4, headDim: 8, pageSize: 8, dtype: 'f32', scale: 1, window: null, causal: true, splits: 1 };
    expect(() => wgslBackend.render('a', att)).toThrow(/multiple of kvHeads/);
    expect(() => wgslBackend.render('a', { ...att, heads: 4, headDim: 258 })).toThrow(/up to 256/);
    expect(() => wgslBackend.render('a', { ...att, heads: 4, window: 0 })).toThrow(/window/);
    expect(() => wgslBackend.render('r', { kind: 'rope', heads: 1, headDim: 5, theta: 1e4 })).toThrow(/even/);
    expect(() => wgslBackend.render('a', { ...att, heads: 4, headDim: 5, dtype: 'int4' })).toThrow(/even/);
    expect(() => wgslBackend.render('k', { kind: 'kv_append', kvHeads: 1, headDim: 5, pageSize: 4, dtype: 'f32', rope: 1e4 })).toThrow(/even/);
    expect(() => wgslBackend.render('n', { kind: 'rmsnorm', dim: 8, eps: NaN })).toThrow(/finite/);
    expect(() => wgslBackend.render('m', { kind: 'matmul', K: 2.5, N: 1, prologue: 'none', eps: 0, residual: false })).toThrow(/K must be/);
    expect(() => wgslBackend.render('bad key*/', { kind: 'embed', dim: 1, vocab: 1 })).toThrow(/key/);
    expect(() => wgslBackend.render('e', { kind: 'elementwise', width: 1, inputs: 1, expr: { kind: 'input', index: 1 } })).toThrow(/input 1/);
  });
});

describe('cstyle', () => {
  it('prints floats that every C-like target reads as floats, and rejects the rest', () => {
    expect([1, -2, 0.5, 1e-5, 1e-7, 1e21, 3.4e38].map((x) => floatText(x))).toEqual(['1.0', '(-2.0)', '0.5', '0.00001', '1e-7', '1e+21', '3.4e+38']);
    expect(floatText(-0)).toBe('(-0.0)');
    expect(floatText(2, 'f')).toBe('2.0f');
    for (const bad of [NaN, Infinity, -Infinity, 1e39]) expect(() => floatText(bad)).toThrow();
    expect(uintText(7)).toBe('7u');
    for (const bad of [-1, 1.5, 2 ** 32]) expect(() => uintText(bad)).toThrow();
  });

  it('renders the same formulas for WGSL and CUDA, differing only in the dialect', () => {
    expect(unaryFormula('silu', 'x', WGSL_DIALECT)).toBe('(x / (1.0 + exp(-x)))');
    expect(unaryFormula('silu', 'x', CUDA_DIALECT)).toBe('(x / (1.0f + expf(-x)))');
    expect(unaryFormula('relu', 'x', WGSL_DIALECT)).toBe('select(0.0, x, x > 0.0)');
    expect(unaryFormula('gelu', 'x', CUDA_DIALECT)).toContain('tanhf(fminf(fmaxf(0.7978845608028654f * (x + 0.044715f * x * x * x), (-15.0f)), 15.0f))');
    for (const fn of UNARY_FNS) expect(unaryFormula(fn, 'v', WGSL_DIALECT)).toMatch(/v/);
  });

  it('renders each distinct subexpression once, so text grows linearly with depth', () => {
    let e: ElementwiseExpr = x0;
    for (let i = 0; i < 30; i++) e = { kind: 'unary', fn: 'gelu', arg: e };
    const r = renderExpr(e, WGSL_DIALECT, (i) => `in${i}[i]`);
    expect(r.lines.length).toBe(31);
    expect(r.lines.join('\n').length).toBeLessThan(31 * 140);
    const shared: ElementwiseExpr = { kind: 'binary', fn: 'add', left: { kind: 'unary', fn: 'exp', arg: x0 }, right: { kind: 'unary', fn: 'exp', arg: x0 } };
    expect(renderExpr(shared, WGSL_DIALECT, (i) => `in${i}[i]`).lines).toEqual(['let v0 = in0[i];', 'let v1 = exp(v0);', 'let v2 = (v1 + v1);']);
  });
});
