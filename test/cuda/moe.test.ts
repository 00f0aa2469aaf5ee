// The CUDA MoE kernels against the float64 interpreter, run on the CPU through the CUDA
// emulation: moe_route over expert counts, k, scoring functions and gating conventions with
// exact ties planted in the router (duplicate columns) and the direct top-k's whole order
// against libstdc++'s std::sort (the rows test/gpu/moe.test.ts measured, heap-sort fallback
// included); moe_experts in every input mode, per slot and combined with a residual, f32 and
// q8_0 / q4_0 experts, including an expert with more rows than one pass (8) takes.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import type { Node, OpArgs } from '../../compiler/ir/index.ts';
import { kernelKey, type KernelSpec, type MoeScore } from '../../program/kernels.ts';
import type { QuantType } from '../../program/quant.ts';
import { routerWithTies } from '../fixtures/moeFixtures.ts';
import { blockWeights, data, expectClose, oracle, rng, seedArb as seed } from '../gpu/harness.ts';
import { runOnCpu } from './emulate.ts';

const TOL = 1e-4;
const RUNS = Number(process.env.INFER_CUDA_RUNS ?? 3);
const TIMEOUT = 240_000;
const render = (spec: KernelSpec) => cudaBackend.render(kernelKey(spec), spec)[0];

it('moe_route: scores, top-k in llama.cpp\'s argsort order (ties included), and each gating convention', () => fc.assert(fc.property(
  fc.record({
    E: fc.integer({ min: 2, max: 40 }), k0: fc.integer({ min: 1, max: 4 }), K: fc.integer({ min: 1, max: 70 }), T: fc.integer({ min: 1, max: 3 }),
    score: fc.constantFrom<MoeScore>('softmax', 'sigmoid', 'none'), convention: fc.constantFrom('renorm', 'plain', 'softmax'), scale: fc.constantFrom(1, 2.5), seed,
  }),
  ({ E, k0, K, T, score, convention, scale, seed }) => {
    const k = Math.min(k0, E);
    const next = rng(seed);
    const x = data(next, T * K), router = routerWithTies(next, K, E);
    const arg: OpArgs['moe_route'] = { k, score, softmax: convention === 'softmax', renorm: convention === 'renorm', scale };
    const want = oracle({ params: { x, router }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => b.node('moe_route', arg, [p('x', [T, K]) as Node, p('router', [K, E])]));
    const spec: KernelSpec = { kind: 'moe_route', K, experts: E, ...arg, direct: false };
    const got = runOnCpu(render(spec), spec, T, { x, router }, { out: T * k * 2 }).out;
    const idx = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => i % 2 === 1);
    expect(idx(got), 'chosen experts (in order)').toEqual(idx(want));
    expectClose(got.filter((_, i) => i % 2 === 0), Array.from(want).filter((_, i) => i % 2 === 0), TOL, 'routing weights');
  }), { numRuns: RUNS + 1 }), TIMEOUT);

it('direct top-k with k = E gives std::sort\'s whole order: ties, the heap-sort fallback (E = 40)', () => {
  // Rows and orders from libstdc++'s std::sort(idx, idx + E, s[a] > s[b]) (GCC 12), as in test/gpu/moe.test.ts.
  const rows: [number[], number[]][] = [
    [[-36, -1, -36, -3, -34, -5, -32, -7, -36, -9, -33, -11, -36, -13, -31, -15, -35, -17, -20, -19, 0, -2, -4, -6, -8, -10, -12, -14, -16, -18, -30, -27, -28, -25, -26, -23, -24, -21, -22, -29],
      [20, 1, 21, 3, 22, 5, 23, 7, 24, 9, 25, 11, 26, 13, 27, 15, 28, 17, 29, 19, 18, 37, 38, 35, 36, 33, 34, 31, 32, 39, 30, 14, 6, 10, 4, 16, 2, 8, 0, 12]],
    [[-38, -1, -36, -3, -34, -5, -32, -7, -36, -9, -32, -11, -40, -13, -31, -15, -34, -17, -20, -19, 0, -2, -4, -6, -8, -10, -12, -14, -16, -18, -30, -27, -28, -25, -26, -23, -24, -21, -22, -29],
      [20, 1, 21, 3, 22, 5, 23, 7, 24, 9, 25, 11, 26, 13, 27, 15, 28, 17, 29, 19, 18, 37, 38, 35, 36, 33, 34, 31, 32, 39, 30, 14, 6, 10, 16, 4, 2, 8, 0, 12]],
  ];
  const E = 40, T = rows.length;
  const spec: KernelSpec = { kind: 'moe_route', K: E, experts: E, k: E, score: 'none', softmax: false, renorm: false, scale: 1, direct: true };
  const got = runOnCpu(render(spec), spec, T, { x: Float32Array.from(rows.flatMap(([s]) => s)) }, { out: T * E * 2 }).out;
  rows.forEach(([, order], t) => expect(Array.from(got.subarray(t * E * 2, (t + 1) * E * 2)).filter((_, i) => i % 2 === 1), `row ${t}`).toEqual(order));
}, TIMEOUT);

type Input = 'shared' | 'slot' | 'silu_mul' | 'swiglu';

function expertsCase(E: number, k0: number, K0: number, N: number, T: number, input: Input, combine: boolean, res0: boolean, wtype: 'f32' | QuantType, seed: number): void {
  const k = Math.min(k0, E), residual = combine && res0;
  const K = wtype === 'f32' ? K0 : 32 * Math.ceil(K0 / 32);
  const next = rng(seed);
  const r = new Float32Array(T * k * 2);
  for (let t = 0; t < T; t++) {
    const order = Array.from({ length: E }, (_, e) => e).sort(() => next() - 0.5).slice(0, k);
    order.forEach((e, j) => { r[(t * k + j) * 2] = 0.2 + next(); r[(t * k + j) * 2 + 1] = e; });
  }
  const weights = () => (wtype === 'f32' ? { values: data(next, K * N * E), packed: null } : blockWeights(wtype, next, K * N * E, 1));
  const w = weights(), w2 = weights();
  const rowsIn = input === 'shared' || input === 'swiglu' ? T : T * k;
  const x = data(next, rowsIn * K), up = data(next, rowsIn * K), res = data(next, T * N);
  const arg: OpArgs['moe_experts'] = { input, combine, residual };
  const want = oracle({ params: { x, up, w: w.values, w2: w2.values, r, res }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => {
    const xs = input === 'shared' || input === 'swiglu' ? p('x', [T, K]) : p('x', [T, k, K]);
    return b.node('moe_experts', arg, [xs, ...(input === 'silu_mul' ? [p('up', [T, k, K])] : []), p('w', [K, N, E]), ...(input === 'swiglu' ? [p('w2', [K, N, E])] : []),
      p('r', [T, k, 2]), ...(residual ? [p('res', [T, N])] : [])] as Node[]);
  });
  const spec: KernelSpec = { kind: 'moe_experts', K, N, experts: E, k, dense: false, ...arg, ...(wtype === 'f32' ? {} : { wtype }) };
  const got = runOnCpu(render(spec), spec, T, {
    ...(input === 'silu_mul' ? { gate: x, up } : { x }), w: w.packed ?? w.values, ...(input === 'swiglu' ? { w2: w2.packed ?? w2.values } : {}), routing: r, ...(residual ? { res } : {}),
  }, { out: (combine ? T : T * k) * N }).out;
  expectClose(got, want, TOL, `moe_experts ${input}${combine ? ' combine' : ''}${residual ? ' residual' : ''} ${wtype} E=${E} k=${k} K=${K} N=${N} T=${T}`);
}

it('moe_experts: chosen rows only, per slot and combined (+ residual), every input mode, f32 and block experts', () => fc.assert(fc.property(
  fc.record({
    E: fc.integer({ min: 2, max: 8 }), k0: fc.integer({ min: 1, max: 3 }), K: fc.integer({ min: 1, max: 70 }), N: fc.integer({ min: 1, max: 40 }), T: fc.integer({ min: 1, max: 4 }),
    input: fc.constantFrom<Input>('shared', 'slot', 'silu_mul', 'swiglu'), combine: fc.boolean(), residual: fc.boolean(), wtype: fc.constantFrom<'f32' | QuantType>('f32', 'q8_0', 'q4_0'), seed,
  }),
  (c) => expertsCase(c.E, c.k0, c.K, c.N, c.T, c.input, c.combine, c.residual, c.wtype, c.seed)), { numRuns: RUNS + 3 }), TIMEOUT);

it('moe_experts: an expert with more rows than one pass takes (8): T = 11, 2 experts', () => {
  expertsCase(2, 2, 12, 20, 11, 'silu_mul', true, true, 'f32', 77);
  expertsCase(2, 2, 64, 20, 11, 'swiglu', false, false, 'q4_0', 78);
}, TIMEOUT);
