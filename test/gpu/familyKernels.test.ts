// The kernels the model families added, on WebGPU against the IR interpreter (the
// pattern of kernels.test.ts): NEOX RoPE (the rope kernel and RoPE folded into the KV
// append), elementwise ops whose operand repeats along each token's row (a bias [N] on
// [T, N], a weight [D] on [T, H, D]), rmsnorm over several rows per token (per-head
// q/k norms), attention with soft-capped scores (fused and unfused), and slices of the last
// dim (Phi-3's fused projections), and the matmul's gelu(gate) * up prologue. fast-check draws shapes, data and positions; no adapter is a failure.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { contiguousTables, CpuKvCache, rope } from '../../compiler/ir/interpret.ts';
import type { ElementwiseExpr } from '../../program/kernels.ts';
import { kvRowWord, packKvTable, pageWords } from '../../program/kv.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { data, expectClose, expectCloseEach, gpuProp, matmulCase, oracle, rng, runOnGpu, seedArb as seed, variants } from './harness.ts';
import { CPU_TARGET, GPU_TARGET } from '../../backends/backend.ts';

const TOL = 1e-4;
const RUNS = Number(process.env.INFER_GPU_RUNS ?? 12);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const ropeCase = fc.record({
  heads: fc.integer({ min: 1, max: 6 }), headDim: fc.integer({ min: 1, max: 64 }).map((d) => 2 * d), T: fc.integer({ min: 1, max: 16 }),
  theta: fc.constantFrom(10000, 1e6, 77.5), start: fc.integer({ min: 0, max: 8000 }), seed,
});

it('rope, NEOX style (rotating halves)', () => gpuProp(ropeCase, async ({ heads, headDim, T, theta, start, seed }) => {
  const next = rng(seed);
  const x = data(next, T * heads * headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  const want = oracle({ params: { x }, tokens: new Int32Array(T), positions }, (b, p) => b.node('rope', { theta, neox: true }, [p('x', [T, heads, headDim]), b.positions()]));
  const got = await runOnGpu(device, variants({ kind: 'rope', heads, headDim, theta, neox: true }).get('')!, T, { x, positions }, { out: T * heads * headDim });
  expectClose(got.out, want, TOL, 'rope neox');
}, RUNS));

it('kv_append with NEOX RoPE stores rope(k, neox) and v (f32 pages, one per token)', () => gpuProp(ropeCase, async ({ heads: kvHeads, headDim, T, theta, start, seed }) => {
  const next = rng(seed);
  const k = data(next, T * kvHeads * headDim), v = data(next, T * kvHeads * headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  // Token t goes to page T - 1 - t (slot = page, pages of one slot): a scatter, not a copy.
  const storage = { kvHeads, headDim, pageSize: 1, dtype: 'f32' as const };
  const slots = Int32Array.from({ length: T }, (_, t) => T - 1 - t);
  const append = variants({ kind: 'kv_append', kvHeads, headDim, pageSize: 1, dtype: 'f32', rope: theta, neox: true }).get('')!;
  const got = await runOnGpu(device, append, T, { k, v, positions, kv_slot: slots }, { kcache: T * kvHeads * headDim, vcache: T * kvHeads * headDim });
  const rotated = rope(k, positions, kvHeads, headDim, theta, true);
  const gotK = new Float64Array(k.length), gotV = new Float64Array(v.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < kvHeads; h++) {
      const w = kvRowWord(storage, slots[t], h, 0), o = (t * kvHeads + h) * headDim;
      for (let d = 0; d < headDim; d++) { gotK[o + d] = got.kcache[w + d]; gotV[o + d] = got.vcache[w + d]; }
    }
  }
  expectClose(gotK, rotated, TOL, 'kv_append neox k');
  expect(Array.from(gotV)).toEqual(Array.from(v));
}, RUNS));

it('elementwise with a repeating operand (x op b, b op x; b a suffix of x\'s shape)', () => gpuProp(fc.record({
  dims: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }), keep: fc.integer({ min: 1, max: 3 }),
  T: fc.integer({ min: 1, max: 12 }), fn: fc.constantFrom('add', 'sub', 'mul', 'div'), swap: fc.boolean(), seed,
}), async ({ dims, keep, T, fn, swap, seed }) => {
  const next = rng(seed);
  const bDims = dims.slice(dims.length - Math.min(keep, dims.length));
  const width = dims.reduce((a, b) => a * b, 1), period = bDims.reduce((a, b) => a * b, 1);
  // A divisor is exp(b) (positive, as accurate in f32 as b): div's domain by construction.
  const x = data(next, T * width, 2), b = fn === 'div' ? data(next, period, 1).map(Math.exp) : data(next, period, 2);
  const xi: ElementwiseExpr = { kind: 'input', index: 0 }, bi: ElementwiseExpr = { kind: 'input', index: 1, period };
  const expr: ElementwiseExpr = { kind: 'binary', fn, left: swap && fn !== 'div' ? bi : xi, right: swap && fn !== 'div' ? xi : bi };
  const want = oracle({ params: { in0: x, in1: b }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (g, p) => {
    const xs = p('in0', [T, ...dims]), bs = p('in1', bDims);
    return g.node('binary', { fn }, swap && fn !== 'div' ? [bs, xs] : [xs, bs]);
  });
  const got = await runOnGpu(device, variants({ kind: 'elementwise', width, inputs: 2, expr }).get('')!, T, { in0: x, in1: b }, { out: T * width });
  expectCloseEach(got.out, want, TOL, `${fn} [T, ${dims}] by [${bDims}]`);
}, RUNS));

it('rmsnorm over several rows per token (per-head norms)', () => gpuProp(fc.record({
  rows: fc.integer({ min: 1, max: 9 }), dim: fc.integer({ min: 1, max: 300 }), eps: fc.constantFrom(1e-6, 0.25), T: fc.integer({ min: 1, max: 12 }), seed,
}), async ({ rows, dim, eps, T, seed }) => {
  const next = rng(seed);
  const x = data(next, T * rows * dim, 3), weight = data(next, dim);
  const want = oracle({ params: { x, weight }, tokens: new Int32Array(T), positions: new Int32Array(T) },
    (b, p) => b.node('rmsnorm', { eps }, [p('x', [T, rows, dim]), p('weight', [dim])]));
  const got = await runOnGpu(device, variants({ kind: 'rmsnorm', dim, eps, rows }).get('')!, T, { x, weight }, { out: T * rows * dim });
  expectClose(got.out, want, TOL, `rmsnorm rows=${rows}`);
}, RUNS));

// Gemma 2's attention-logit soft-capping, in the fused PagedAttention and in the unfused
// scores kernel: one sequence of T tokens appended (pages of 4) and attended, causal, with
// or without a window, against the interpreter's attention over the same cache.
it('attention with soft-capped scores (fused and unfused scores kernel)', () => gpuProp(fc.record({
  kvHeads: fc.integer({ min: 1, max: 3 }), group: fc.integer({ min: 1, max: 3 }), headDim: fc.constantFrom(4, 6, 16, 32), T: fc.integer({ min: 1, max: 20 }),
  window: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }), softcap: fc.constantFrom(0.5, 2, 50), seed,
}), async ({ kvHeads, group, headDim, T, window, softcap, seed }) => {
  const next = rng(seed);
  const heads = kvHeads * group, pageSize = 4, pages = Math.ceil(T / pageSize);
  // Scores of a few units, so a cap of 0.5 or 2 bends them and 50 barely does.
  const q = data(next, T * heads * headDim, 2), k = data(next, T * kvHeads * headDim, 2), v = data(next, T * kvHeads * headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  const tables = contiguousTables(positions, pageSize);
  const scale = 1 / Math.sqrt(headDim);
  const arg = { layer: 0, causal: true, window, scale, softcap };
  const kv = new CpuKvCache(1, kvHeads, headDim, pages * pageSize, { pageSize });
  const want = oracle({ params: { q, k, v }, tokens: new Int32Array(T), positions, kv }, (b, p) => {
    const store = b.node('kv_store', { layer: 0, rope: null }, [p('k', [T, kvHeads, headDim]), p('v', [T, kvHeads, headDim]), b.positions()]);
    return b.node('attention', arg, [p('q', [T, heads, headDim]), store, b.positions()]);
  });
  const words = pages * pageWords({ kvHeads, headDim, pageSize, dtype: 'f32' });
  const common = { kvHeads, headDim, pageSize, dtype: 'f32' as const };
  const append = variants({ kind: 'kv_append', ...common, rope: null }).get('')!;
  const attend = variants({ kind: 'attention', heads, ...common, scale, window, causal: true, splits: 1, softcap }).get('')!;
  const inputs = { q, k, v, positions, kv_slot: tables.slots, kv_seq: tables.seqOf, kv_table: packKvTable(tables) };
  const got = await runOnGpu(device, [append, attend], T, inputs, { kcache: words, vcache: words, out: T * heads * headDim });
  expectClose(got.out, want, TOL, `attention softcap ${softcap} window ${window}`);
  // The unfused scores kernel against the interpreter's attn_scores (visible entries; the rest are -inf / -1e30).
  const context = T;
  const wantScores = oracle({ params: { q, k, v }, tokens: new Int32Array(T), positions, kv: new CpuKvCache(1, kvHeads, headDim, pages * pageSize, { pageSize }) }, (b, p) => {
    const store = b.node('kv_store', { layer: 0, rope: null }, [p('k', [T, kvHeads, headDim]), p('v', [T, kvHeads, headDim]), b.positions()]);
    return b.node('attn_scores', { ...arg, context }, [p('q', [T, heads, headDim]), store, b.positions()]);
  });
  const scores = variants({ kind: 'attn_scores', heads, ...common, scale, window, causal: true, context, softcap }).get('')!;
  const gotScores = await runOnGpu(device, [append, scores], T, inputs, { kcache: words, vcache: words, out: T * heads * context });
  const visible = (x: number) => (x > -1e29 ? x : 0);
  expectClose(Array.from(gotScores.out, visible), Array.from(wantScores, visible), TOL, `attn_scores softcap ${softcap}`);
  for (const s of wantScores) if (s > -1e29) expect(Math.abs(s)).toBeLessThanOrEqual(softcap);
  // Each run compiles three attention pipelines (slow on lavapipe): a third of the runs.
}, Math.max(3, Math.round(RUNS / 3))));

it('slice of the last dim (fused QKV / gate-up split)', () => gpuProp(fc.record({
  rows: fc.integer({ min: 1, max: 4 }), width: fc.integer({ min: 1, max: 200 }), T: fc.integer({ min: 1, max: 12 }), a: fc.nat(), b: fc.nat(), seed,
}), async ({ rows, width, T, a, b, seed }) => {
  const start = a % width, len = 1 + (b % (width - start));
  const x = data(rng(seed), T * rows * width);
  const want = oracle({ params: { x }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (g, p) => g.node('slice', { start, len }, [p('x', [T, rows, width])]));
  const got = await runOnGpu(device, variants({ kind: 'slice', width, rows, start, len }).get('')!, T, { x }, { out: T * rows * len });
  expect(Array.from(got.out)).toEqual(Array.from(want));
}, RUNS));

// Gemma's gated GELU in the down projection's prologue (fuseGeluMul): every matmul variant
// (GEMV with vec4 and scalar rows, the 4-token GEMV, the tiled kernel), with and without
// the residual epilogue.
it('matmul with the gelu(gate) * up prologue, every variant', () => gpuProp(fc.record({
  K: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 60 }).map((k) => 4 * k)), N: fc.integer({ min: 1, max: 100 }),
  T: fc.integer({ min: 1, max: 40 }), residual: fc.boolean(), variant: fc.constantFrom('gemv', 'gemv4', 'tiled'), cpu: fc.boolean(), seed,
}), async ({ K, N, T, residual, variant, cpu, seed }) => {
  const next = rng(seed);
  // Gates of a few units: GELU's curved part and its tails, where tanh saturates.
  const { inputs } = matmulCase(next, data(next, K * N, 1 / Math.sqrt(K)), K, N, T, 'gelu_mul', residual);
  inputs.gate = inputs.gate.map((g) => 4 * g);
  const want = oracle({ params: inputs, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) =>
    b.node('fused_matmul', { prologue: 'gelu_mul', eps: 0, residual }, [p('gate', [T, K]), p('up', [T, K]), p('w', [K, N]), ...(residual ? [p('res', [T, N])] : [])]));
  const got = await runOnGpu(device, variants({ kind: 'matmul', K, N, prologue: 'gelu_mul', eps: 0, residual }, cpu ? CPU_TARGET : GPU_TARGET).get(variant)!, T, inputs, { out: T * N });
  expectClose(got.out, want, TOL, `${variant} K=${K} N=${N} T=${T}`);
}, Math.max(4, Math.round(RUNS / 2))));

it('elementwise with a [T, 1] operand repeated along each token\'s row (a per-token gate)', () => gpuProp(fc.record({
  width: fc.integer({ min: 2, max: 150 }), T: fc.integer({ min: 1, max: 12 }), fn: fc.constantFrom('add', 'sub', 'mul'), swap: fc.boolean(), seed,
}), async ({ width, T, fn, swap, seed }) => {
  const next = rng(seed);
  const x = data(next, T * width, 2), g = data(next, T, 2);
  const xi: ElementwiseExpr = { kind: 'input', index: 0 }, gi: ElementwiseExpr = { kind: 'input', index: 1, perToken: true };
  const expr: ElementwiseExpr = { kind: 'binary', fn, left: swap ? gi : xi, right: swap ? xi : gi };
  // The [T, 1] rule needs T in the shapes: embedding rows 0..T-1 of tables holding x and g gives them.
  const tokens = Int32Array.from({ length: T }, (_, t) => t);
  const want = oracle({ params: { in0: x, in1: g }, tokens, positions: new Int32Array(T) }, (b, p) => {
    const xs = b.node('embed', {}, [b.tokens(), p('in0', [width, T])]), gs = b.node('embed', {}, [b.tokens(), p('in1', [1, T])]);
    return b.node('binary', { fn }, swap ? [gs, xs] : [xs, gs]);
  });
  const got = await runOnGpu(device, variants({ kind: 'elementwise', width, inputs: 2, expr }).get('')!, T, { in0: x, in1: g }, { out: T * width });
  expectCloseEach(got.out, want, TOL, `${fn} [T, ${width}] by [T, 1]`);
}, RUNS));
