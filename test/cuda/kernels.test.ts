// The CUDA backend's row kernels (embed, rmsnorm, rope, rope and kv_append with the per-head
// norm, slice, elementwise, softmax, moe_combine, attention_merge) against the float64 interpreter, run on the CPU through the CUDA
// emulation (emu/cuda_emu.h; this machine has nvcc but no GPU). fast-check draws shapes
// (multiples of 4 and not: the float4 and scalar paths), data and positions. Each case
// compiles a program with g++, so runs are few and shapes small. Never skipped: a missing
// g++ fails. nvcc compiles the same sources in compile.test.ts.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { kernelKey, type ElementwiseExpr, type KernelSpec } from '../../program/kernels.ts';
import type { QuantType } from '../../program/quant.ts';
import { blockWeights, data, expectClose, expectCloseEach, oracle, rng, seedArb as seed } from '../gpu/harness.ts';
import { exprArb, f32Conditioned, graphOfExpr } from '../gpu/exprArb.ts';
import { runKernelsOnCpu, runOnCpu } from './emulate.ts';
import { expectWithinBound, normalised } from '../gpu/qkNormCheck.ts';
import { kvRowWord } from '../../program/kv.ts';

const TOL = 1e-4;
const RUNS = Number(process.env.INFER_CUDA_RUNS ?? 3);
const TIMEOUT = 120_000;
const render = (spec: KernelSpec) => cudaBackend.render(kernelKey(spec), spec)[0];
const prop = <T>(arb: fc.Arbitrary<T>, body: (c: T) => void, runs = RUNS) => fc.assert(fc.property(arb, body), { numRuns: runs });

it('embed (f32, q8_0 and q4_0 tables; ids outside the vocabulary give zero rows)', () => prop(fc.record({
  dim: fc.integer({ min: 1, max: 70 }), vocab: fc.integer({ min: 1, max: 30 }), T: fc.integer({ min: 1, max: 6 }), wtype: fc.constantFrom<'f32' | QuantType>('f32', 'q8_0', 'q4_0'), seed,
}), ({ dim: d0, vocab, T, wtype, seed }) => {
  const next = rng(seed);
  const dim = wtype === 'f32' ? d0 : 32 * Math.ceil(d0 / 32);
  const w = wtype === 'f32' ? { values: data(next, dim * vocab), packed: null } : blockWeights(wtype, next, dim * vocab, 1);
  // The last token is outside the vocabulary.
  const tokens = Int32Array.from({ length: T }, (_, i) => (i === T - 1 && T > 1 ? vocab : Math.floor(next() * vocab)));
  const known = Int32Array.from(tokens, (t) => Math.min(t, vocab - 1));
  const want = Float64Array.from(oracle({ params: { table: w.values }, tokens: known, positions: new Int32Array(T) }, (b, p) => b.node('embed', {}, [b.tokens(), p('table', [dim, vocab])])));
  tokens.forEach((t, i) => { if (t >= vocab) want.fill(0, i * dim, (i + 1) * dim); });
  const spec: KernelSpec = { kind: 'embed', dim, vocab, ...(wtype === 'f32' ? {} : { wtype }) };
  const got = runOnCpu(render(spec), spec, T, { tokens, table: w.packed ?? w.values }, { out: T * dim });
  expectClose(got.out, want, TOL, `embed ${wtype} dim=${dim}`);
}), TIMEOUT);

// A table split into id ranges (compiler/splitParams.ts): each part writes the rows of its ids,
// the part at 0 also the zero rows of ids outside the whole vocabulary. Both parts run into
// rows pre-filled with a sentinel (every row must be written once); the second also runs alone,
// and the rows of the other tokens must keep the sentinel.
it('embed over a split table (idOffset / vocabTotal; f32, q8_0 and q4_0 parts)', () => prop(fc.record({
  dim: fc.integer({ min: 1, max: 70 }), v0: fc.integer({ min: 1, max: 12 }), v1: fc.integer({ min: 1, max: 12 }), T: fc.integer({ min: 2, max: 6 }),
  wtype: fc.constantFrom<'f32' | QuantType>('f32', 'q8_0', 'q4_0'), seed,
}), ({ dim: d0, v0, v1, T, wtype, seed }) => {
  const next = rng(seed);
  const dim = wtype === 'f32' ? d0 : 32 * Math.ceil(d0 / 32), vocab = v0 + v1;
  const parts = [v0, v1].map((v) => (wtype === 'f32' ? { values: data(next, dim * v), packed: null } : blockWeights(wtype, next, dim * v, 1)));
  // Token 0 is outside the vocabulary (past its end or negative), token 1 in the second part, the rest anywhere.
  const tokens = Int32Array.from({ length: T }, (_, i) => (i === 0 ? (seed % 2 ? vocab : -1) : i === 1 ? v0 + Math.floor(next() * v1) : Math.floor(next() * vocab)));
  const rowOf = (id: number) => (id < 0 || id >= vocab ? null : id < v0 ? parts[0].values.subarray(id * dim, (id + 1) * dim) : parts[1].values.subarray((id - v0) * dim, (id - v0 + 1) * dim));
  const want = new Float32Array(T * dim);
  tokens.forEach((id, t) => { const r = rowOf(id); if (r) want.set(r, t * dim); });
  const specs = [{ idOffset: 0, v: v0 }, { idOffset: v0, v: v1 }].map(({ idOffset, v }): KernelSpec => ({ kind: 'embed', dim, vocab: v, ...(wtype === 'f32' ? {} : { wtype }), idOffset, vocabTotal: vocab }));
  const SENTINEL = 7;
  const got = runKernelsOnCpu([
    { kernel: render(specs[0]), spec: specs[0], bind: { table: 't0' } },
    { kernel: render(specs[1]), spec: specs[1], bind: { table: 't1' } },
    { kernel: render(specs[1]), spec: specs[1], bind: { table: 't1', out: 'alone' } },
  ], T, { tokens, t0: parts[0].packed ?? parts[0].values, t1: parts[1].packed ?? parts[1].values },
  { out: new Float32Array(T * dim).fill(SENTINEL), alone: new Float32Array(T * dim).fill(SENTINEL) });
  expectClose(got.out, want, TOL, `embed split ${wtype} dim=${dim} vocab=${v0}+${v1} tokens=${tokens}`);
  tokens.forEach((id, t) => {
    const row = Array.from(got.alone.subarray(t * dim, (t + 1) * dim));
    if (id >= v0 && id < vocab) expectClose(row, want.subarray(t * dim, (t + 1) * dim), TOL, `second part alone, token ${id}`);
    else expect(row, `the second part wrote the row of token ${id}`).toEqual(new Array(dim).fill(SENTINEL));
  });
}), TIMEOUT);

// Per-head norms (rows > 1) and the one-row kernel over the same rows as tokens, in one program.
it('rmsnorm (one row per token, and several: per-head norms)', () => prop(fc.record({
  dim: fc.integer({ min: 1, max: 300 }), rows: fc.integer({ min: 2, max: 5 }), eps: fc.constantFrom(1e-5, 0.25), T: fc.integer({ min: 1, max: 4 }), seed,
}), ({ dim, rows, eps, T, seed }) => {
  const next = rng(seed);
  const x = data(next, T * rows * dim, 3), weight = data(next, dim);
  const want = oracle({ params: { x, weight }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => b.node('rmsnorm', { eps }, [p('x', [T, rows, dim]), p('weight', [dim])]));
  const one: KernelSpec = { kind: 'rmsnorm', dim, eps }, perHead: KernelSpec = { kind: 'rmsnorm', dim, eps, rows };
  const got = runKernelsOnCpu([{ kernel: render(one), spec: one, tokens: T * rows, bind: { out: 'out1' } }, { kernel: render(perHead), spec: perHead }], T, { x, weight }, { out1: T * rows * dim, out: T * rows * dim });
  expectClose(got.out1, want, TOL, `rmsnorm dim=${dim} (rows as tokens)`);
  expectClose(got.out, want, TOL, `rmsnorm dim=${dim} rows=${rows}`);
}), TIMEOUT);

// Both RoPE styles in one program, each against the interpreter.
it('rope, normal and NEOX (rotating halves), positions up to 8191', () => prop(fc.record({
  heads: fc.integer({ min: 1, max: 4 }), headDim: fc.integer({ min: 1, max: 40 }).map((d) => 2 * d), T: fc.integer({ min: 1, max: 4 }),
  theta: fc.constantFrom(10000, 500000, 77.5), start: fc.integer({ min: 0, max: 8191 - 4 }), seed,
}), ({ heads, headDim, T, theta, start, seed }) => {
  const next = rng(seed);
  const x = data(next, T * heads * headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  const want = (neox: boolean) => oracle({ params: { x }, tokens: new Int32Array(T), positions }, (b, p) => b.node('rope', { theta, ...(neox ? { neox } : {}) }, [p('x', [T, heads, headDim]), b.positions()]));
  const normal: KernelSpec = { kind: 'rope', heads, headDim, theta }, neox: KernelSpec = { ...normal, neox: true };
  const got = runKernelsOnCpu([{ kernel: render(normal), spec: normal }, { kernel: render(neox), spec: neox, bind: { out: 'out_neox' } }], T, { x, positions }, { out: T * heads * headDim, out_neox: T * heads * headDim });
  expectClose(got.out, want(false), TOL, 'rope');
  expectClose(got.out_neox, want(true), TOL, 'rope neox');
}), TIMEOUT);

// Qwen3's per-head q/k norm folded in (fuseQkNorm.ts): rope with `norm` in both styles, and
// the KV append with `norm` and RoPE (f32 pages of one slot, tokens scattered in reverse), in
// one emulated program; the bound is the WebGPU test's (test/gpu/qkNormCheck.ts).
it('rope and kv_append with the per-head norm equal rope(rmsnorm(x)) and store it', () => prop(fc.record({
  heads: fc.integer({ min: 1, max: 4 }), headDim: fc.integer({ min: 1, max: 40 }).map((d) => 2 * d), T: fc.integer({ min: 1, max: 4 }),
  theta: fc.constantFrom(10000, 1e6, 77.5), neox: fc.boolean(), eps: fc.constantFrom(1e-6, 0.25), start: fc.integer({ min: 0, max: 8191 - 4 }), seed,
}), ({ heads, headDim, T, theta, neox, eps, start, seed }) => {
  const next = rng(seed);
  const x = data(next, T * heads * headDim, 3), v = data(next, T * heads * headDim), norm = data(next, headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i), slots = Int32Array.from({ length: T }, (_, t) => T - 1 - t);
  const style = neox ? { neox } : {};
  const want = oracle({ params: { x, norm }, tokens: new Int32Array(T), positions }, (b, p) =>
    b.node('rope', { theta, ...style, norm: eps }, [p('x', [T, heads, headDim]), b.positions(), p('norm', [headDim])]));
  const rope: KernelSpec = { kind: 'rope', heads, headDim, theta, ...style, norm: eps };
  const append: KernelSpec = { kind: 'kv_append', kvHeads: heads, headDim, pageSize: 1, dtype: 'f32', rope: theta, ...style, norm: eps };
  const n = T * heads * headDim;
  const got = runKernelsOnCpu([{ kernel: render(rope), spec: rope }, { kernel: render(append), spec: append, bind: { k: 'x' } }], T,
    { x, v, positions, norm, kv_slot: slots }, { out: n, kcache: n, vcache: n });
  const exact = normalised(x, norm, headDim, eps);
  expectWithinBound(got.out, want, exact, headDim, neox, true, `cuda rope norm ${neox ? 'neox' : 'normal'} H=${heads} D=${headDim} T=${T}`);
  const gotK = new Float64Array(n);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const w = kvRowWord({ kvHeads: heads, headDim, pageSize: 1, dtype: 'f32' }, slots[t], h, 0), o = (t * heads + h) * headDim;
      for (let d = 0; d < headDim; d++) gotK[o + d] = got.kcache[w + d];
    }
  }
  expectWithinBound(gotK, want, exact, headDim, neox, true, `cuda kv_append norm ${neox ? 'neox' : 'normal'} KH=${heads} D=${headDim} T=${T}`);
}), TIMEOUT);

it('slice of the last dim (fused QKV / gate-up split): an exact copy', () => prop(fc.record({
  rows: fc.integer({ min: 1, max: 4 }), width: fc.integer({ min: 1, max: 200 }), T: fc.integer({ min: 1, max: 4 }), a: fc.nat(), b: fc.nat(), seed,
}), ({ rows, width, T, a, b, seed }) => {
  const start = a % width, len = 1 + (b % (width - start));
  const x = data(rng(seed), T * rows * width);
  const want = oracle({ params: { x }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (g, p) => g.node('slice', { start, len }, [p('x', [T, rows, width])]));
  const spec: KernelSpec = { kind: 'slice', width, rows, start, len };
  expect(Array.from(runOnCpu(render(spec), spec, T, { x }, { out: T * rows * len }).out)).toEqual(Array.from(want));
}), TIMEOUT);

it('elementwise (random expressions over every unary and binary function)', () => prop(fc.record({
  inputs: fc.integer({ min: 1, max: 3 }), width: fc.integer({ min: 1, max: 150 }), T: fc.integer({ min: 1, max: 3 }), seed,
}).chain((c) => exprArb(c.inputs).map((expr) => ({ ...c, expr }))), ({ inputs, width, T, seed, expr }) => {
  const next = rng(seed);
  const ins: Record<string, Float32Array> = {};
  for (let i = 0; i < inputs; i++) ins[`in${i}`] = data(next, T * width, 2);
  fc.pre(f32Conditioned(expr, ins, T * width, TOL));
  const want = oracle({ params: ins, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => graphOfExpr(expr as ElementwiseExpr, b, (i) => p(`in${i}`, [T, width])));
  const spec: KernelSpec = { kind: 'elementwise', width, inputs, expr };
  expectCloseEach(runOnCpu(render(spec), spec, T, ins, { out: T * width }).out, want, TOL, JSON.stringify(expr));
}, RUNS + 1), TIMEOUT);

// Operands that repeat (the families' biases and per-token gates): a bias [period] along each
// token's row (x op b, b op x), and a [T, 1] operand along its token's row, in one program.
it('elementwise with a repeating operand (a bias along each row; a per-token value)', () => prop(fc.record({
  dims: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }), keep: fc.integer({ min: 1, max: 3 }),
  T: fc.integer({ min: 2, max: 4 }), fn: fc.constantFrom('add', 'sub', 'mul'), swap: fc.boolean(), seed,
}), ({ dims, keep, T, fn, swap, seed }) => {
  const next = rng(seed);
  const bDims = dims.slice(dims.length - Math.min(keep, dims.length));
  const width = dims.reduce((a, b) => a * b, 1), period = bDims.reduce((a, b) => a * b, 1);
  const x = data(next, T * width, 2), b = data(next, period, 2), g = data(next, T, 2);
  const xi: ElementwiseExpr = { kind: 'input', index: 0 };
  const pair = (other: ElementwiseExpr): ElementwiseExpr => ({ kind: 'binary', fn, left: swap ? other : xi, right: swap ? xi : other });
  const bias: KernelSpec = { kind: 'elementwise', width, inputs: 2, expr: pair({ kind: 'input', index: 1, period }) };
  const gate: KernelSpec = { kind: 'elementwise', width, inputs: 2, expr: pair({ kind: 'input', index: 1, perToken: true }) };
  const wantBias = oracle({ params: { in0: x, in1: b }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (gr, p) => {
    const xs = p('in0', [T, ...dims]), bs = p('in1', bDims);
    return gr.node('binary', { fn }, swap ? [bs, xs] : [xs, bs]);
  });
  // The [T, 1] rule needs T in the shapes: embedding rows 0..T-1 of tables holding x and g gives them.
  const tokens = Int32Array.from({ length: T }, (_, t) => t);
  const wantGate = oracle({ params: { in0: x, in1: g }, tokens, positions: new Int32Array(T) }, (gr, p) => {
    const xs = gr.node('embed', {}, [gr.tokens(), p('in0', [width, T])]), gs = gr.node('embed', {}, [gr.tokens(), p('in1', [1, T])]);
    return gr.node('binary', { fn }, swap ? [gs, xs] : [xs, gs]);
  });
  const got = runKernelsOnCpu([
    { kernel: render(bias), spec: bias, bind: { in1: 'b', out: 'out_b' } },
    { kernel: render(gate), spec: gate, bind: { in1: 'g', out: 'out_g' } },
  ], T, { in0: x, b, g }, { out_b: T * width, out_g: T * width });
  expectCloseEach(got.out_b, wantBias, TOL, `${fn} [T, ${dims}] by [${bDims}]`);
  expectCloseEach(got.out_g, wantGate, TOL, `${fn} [T, ${width}] by [T, 1]`);
}), TIMEOUT);

it('softmax (rows per token)', () => prop(fc.record({ width: fc.integer({ min: 1, max: 300 }), rows: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 3 }), seed }), ({ width, rows, T, seed }) => {
  const next = rng(seed);
  const x = data(next, T * rows * width, 8);
  const want = oracle({ params: { x }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => b.node('softmax', {}, [p('x', [T, rows, width])]));
  const spec: KernelSpec = { kind: 'softmax', width, rows };
  expectClose(runOnCpu(render(spec), spec, T, { x }, { out: T * rows * width }).out, want, TOL, `softmax width=${width} rows=${rows}`);
}), TIMEOUT);

it('moe_combine', () => prop(fc.record({ E: fc.integer({ min: 2, max: 8 }), k0: fc.integer({ min: 1, max: 3 }), D: fc.integer({ min: 1, max: 150 }), T: fc.integer({ min: 1, max: 4 }), seed }), ({ E, k0, D, T, seed }) => {
  const k = Math.min(k0, E);
  const next = rng(seed);
  const routing = new Float32Array(T * k * 2), y = data(next, T * E * D);
  for (let t = 0; t < T; t++) {
    const chosen = Array.from({ length: E }, (_, e) => e).sort(() => next() - 0.5).slice(0, k);
    chosen.forEach((e, j) => { routing[(t * k + j) * 2] = 0.2 + next(); routing[(t * k + j) * 2 + 1] = e; });
  }
  const want = oracle({ params: { routing, y }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => b.node('moe', {}, [p('routing', [T, k, 2]), p('y', [T, E, D])]));
  const spec: KernelSpec = { kind: 'moe_combine', experts: E, k, width: D };
  expectClose(runOnCpu(render(spec), spec, T, { routing, y }, { out: T * D }).out, want, TOL, 'moe_combine');
}), TIMEOUT);
