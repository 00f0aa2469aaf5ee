// The MoE kernels on WebGPU against the float64 interpreter: moe_route over random
// expert counts (2..64), k (1..4), T, widths, score functions and gating conventions,
// with exact ties planted in the router (duplicate columns), and the unfused (direct)
// top-k over score rows whose order llama.cpp's CPU argsort (libstdc++'s std::sort)
// was measured to give, heap-sort fallback included; moe_experts in every
// input mode, per slot and combined with a residual; whole MoE models on the WebGPU
// engine against the unfused interpreter graph; and the bytes claim on the device:
// unchosen experts' weights are NaN, so reading any of them would poison the logits.
// One device for the file.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Node } from '../../compiler/ir/index.ts';
import type { MoeScore } from '../../program/kernels.ts';
import type { OpArgs } from '../../compiler/ir/ops.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { data, expectClose, oracle, rng, runOnGpu, variants } from './harness.ts';
import { compileMoe, moeShapeArb, moeWeights, routerWithTies } from '../fixtures/moeFixtures.ts';
import { CpuKvCache, interpret } from '../../compiler/ir/index.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';

const TOL = 1e-4;
const RUNS = Number(process.env.INFER_GPU_RUNS ?? 7);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const prop = <T>(arb: fc.Arbitrary<T>, body: (c: T) => Promise<void>) => fc.assert(fc.asyncProperty(arb, body), { numRuns: RUNS });

const gating = fc.record({
  score: fc.constantFrom<MoeScore>('softmax', 'sigmoid', 'none'),
  convention: fc.constantFrom('renorm', 'plain', 'softmax'),
  scale: fc.constantFrom(1, 2.5, 0.5),
});

/** A routing [T, k, 2] from the interpreter, for feeding the experts kernel. */
function routing(T: number, E: number, k: number, next: () => number): Float32Array {
  const r = new Float32Array(T * k * 2);
  for (let t = 0; t < T; t++) {
    const order = Array.from({ length: E }, (_, e) => e).sort(() => next() - 0.5).slice(0, k);
    order.forEach((e, j) => { r[(t * k + j) * 2] = 0.2 + next(); r[(t * k + j) * 2 + 1] = e; });
  }
  return r;
}

it('moe_route: scores, top-k in llama.cpp\'s argsort order (ties included), and each gating convention', () => prop(
  fc.record({ E: fc.integer({ min: 2, max: 64 }), k0: fc.integer({ min: 1, max: 4 }), K: fc.integer({ min: 1, max: 90 }), T: fc.integer({ min: 1, max: 9 }), g: gating, seed }),
  async ({ E, k0, K, T, g, seed }) => {
    const k = Math.min(k0, E);
    const next = rng(seed);
    const x = data(next, T * K);
    const router = routerWithTies(next, K, E);
    const arg: OpArgs['moe_route'] = { k, score: g.score, softmax: g.convention === 'softmax', renorm: g.convention === 'renorm', scale: g.scale };
    const want = oracle({ params: { x, router }, tokens: new Int32Array(T), positions: new Int32Array(T) },
      (b, p) => b.node('moe_route', arg, [p('x', [T, K]) as Node, p('router', [K, E])]));
    const spec: KernelSpec = { kind: 'moe_route', K, experts: E, ...arg, direct: false };
    const got = (await runOnGpu(device, variants(spec).get('')!, T, { x, router }, { out: T * k * 2 })).out;
    const idx = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => i % 2 === 1);
    expect(idx(got), 'chosen experts (in order)').toEqual(idx(want));
    expectClose(got.filter((_, i) => i % 2 === 0), Array.from(want).filter((_, i) => i % 2 === 0), TOL, 'routing weights');
  }));

it('direct top-k with k = E gives std::sort\'s whole order: E 4 .. 40, ties, the heap-sort fallback', async () => {
  // Rows and orders from libstdc++'s std::sort(idx, idx + E, s[a] > s[b]) (GCC 12); the
  // 40-element rows drive its introsort to the heap-sort fallback.
  const cases: [number[], number[]][] = [
    [[2, 2, 3, 1], [2, 0, 1, 3]],
    [[1, 3, 1, 2, 3, 0, 2, 0, 3, 3, 3, 0, 1, 3, 3, 2, 0, 1, 3, 3], [10, 19, 18, 14, 13, 9, 8, 4, 1, 6, 3, 15, 0, 12, 17, 2, 7, 5, 11, 16]],
    [[2, 1, 3, 1, 1, 1, 0, 0, 0, 3, 2, 1, 0, 2, 3, 2, 2, 3, 0, 0, 2, 3, 0, 3, 2, 3, 1, 1, 3, 2, 2, 3], [31, 2, 28, 25, 23, 9, 21, 17, 14, 16, 30, 29, 24, 20, 0, 13, 15, 10, 1, 3, 4, 5, 27, 26, 11, 7, 6, 8, 22, 19, 18, 12]],
    [[-36, -1, -36, -3, -34, -5, -32, -7, -36, -9, -33, -11, -36, -13, -31, -15, -35, -17, -20, -19, 0, -2, -4, -6, -8, -10, -12, -14, -16, -18, -30, -27, -28, -25, -26, -23, -24, -21, -22, -29],
      [20, 1, 21, 3, 22, 5, 23, 7, 24, 9, 25, 11, 26, 13, 27, 15, 28, 17, 29, 19, 18, 37, 38, 35, 36, 33, 34, 31, 32, 39, 30, 14, 6, 10, 4, 16, 2, 8, 0, 12]],
    [[-38, -1, -36, -3, -34, -5, -32, -7, -36, -9, -32, -11, -40, -13, -31, -15, -34, -17, -20, -19, 0, -2, -4, -6, -8, -10, -12, -14, -16, -18, -30, -27, -28, -25, -26, -23, -24, -21, -22, -29],
      [20, 1, 21, 3, 22, 5, 23, 7, 24, 9, 25, 11, 26, 13, 27, 15, 28, 17, 29, 19, 18, 37, 38, 35, 36, 33, 34, 31, 32, 39, 30, 14, 6, 10, 16, 4, 2, 8, 0, 12]],
  ];
  const byE = new Map<number, [number[], number[]][]>();
  for (const c of cases) byE.set(c[0].length, [...(byE.get(c[0].length) ?? []), c]);
  for (const [E, rows] of byE) {
    const T = rows.length;
    const x = Float32Array.from(rows.flatMap(([s]) => s));
    const spec: KernelSpec = { kind: 'moe_route', K: E, experts: E, k: E, score: 'none', softmax: false, renorm: false, scale: 1, direct: true };
    const got = (await runOnGpu(device, variants(spec).get('')!, T, { x }, { out: T * E * 2 })).out;
    rows.forEach(([, order], t) => expect(Array.from(got.subarray(t * E * 2, (t + 1) * E * 2)).filter((_, i) => i % 2 === 1), `E = ${E}, row ${t}`).toEqual(order));
  }
});

it('moe_experts: chosen rows only, per slot and combined (+ residual), every input mode', () => prop(
  fc.record({
    E: fc.integer({ min: 2, max: 64 }), k0: fc.integer({ min: 1, max: 4 }), K: fc.integer({ min: 1, max: 70 }), N: fc.integer({ min: 1, max: 150 }),
    T: fc.integer({ min: 1, max: 12 }), input: fc.constantFrom<'shared' | 'slot' | 'silu_mul' | 'swiglu'>('shared', 'slot', 'silu_mul', 'swiglu'),
    combine: fc.boolean(), residual: fc.boolean(), seed,
  }),
  expertsCase));

type ExpertsCase = { E: number; k0: number; K: number; N: number; T: number; input: 'shared' | 'slot' | 'silu_mul' | 'swiglu'; combine: boolean; residual: boolean; seed: number };

async function expertsCase({ E, k0, K, N, T, input, combine, residual: res0, seed }: ExpertsCase): Promise<void> {
  const k = Math.min(k0, E);
  const residual = combine && res0;
  const next = rng(seed);
  const r = routing(T, E, k, next);
  const w = data(next, K * N * E), w2 = data(next, K * N * E);
  const rows = input === 'shared' || input === 'swiglu' ? T : T * k;
  const x = data(next, rows * K), up = data(next, rows * K), res = data(next, T * N);
  const arg: OpArgs['moe_experts'] = { input, combine, residual };
  const want = oracle({ params: { x, up, w, w2, r, res }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => {
    const xs = input === 'shared' || input === 'swiglu' ? p('x', [T, K]) : p('x', [T, k, K]);
    const src = [xs, ...(input === 'silu_mul' ? [p('up', [T, k, K])] : []), p('w', [K, N, E]), ...(input === 'swiglu' ? [p('w2', [K, N, E])] : []),
      p('r', [T, k, 2]), ...(residual ? [p('res', [T, N])] : [])];
    return b.node('moe_experts', arg, src as Node[]);
  });
  const spec: KernelSpec = { kind: 'moe_experts', K, N, experts: E, k, dense: false, ...arg };
  const inputs: Record<string, Float32Array> = input === 'silu_mul' ? { gate: x, up } : { x };
  const got = (await runOnGpu(device, variants(spec).get('')!, T, { ...inputs, w, ...(input === 'swiglu' ? { w2 } : {}), routing: r, ...(residual ? { res } : {}) }, { out: (combine ? T : T * k) * N })).out;
  expectClose(got, want, TOL, `moe_experts ${input}${combine ? ' combine' : ''}${residual ? ' residual' : ''}`);
}

it('moe_experts: an expert with more rows than one pass takes (8): T = 21, 2 experts, every mode', async () => {
  for (const input of ['shared', 'slot', 'silu_mul', 'swiglu'] as const) {
    for (const combine of [false, true]) await expertsCase({ E: 2, k0: 2, K: 12, N: 70, T: 21, input, combine, residual: combine, seed: 77 });
  }
});

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}

it('whole MoE models: WebGPU engine (fused, or the dense unfused program) equals the unfused interpreter graph, prefill and decode', () => fc.assert(fc.asyncProperty(moeShapeArb(64), fc.boolean(), async (s, fuse) => {
  const { unfused, graph, program } = compileMoe(s, fuse ? undefined : new Set(['moe']));
  const w = moeWeights(unfused, s.seed);
  const m = unfused.model;
  const engine = await WebGpuEngine.create({ device, program: program!, backend: wgslBackend, weights: w, moeStats: true });
  // The CPU engine's routing statistics come from the interpreter's routing values.
  const cpu = new CpuEngine(graph, w, program);
  try {
    const kv = new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext);
    const steps = [Int32Array.from({ length: s.T }, (_, i) => (i * 5 + 3) % m.vocab), Int32Array.of(1 % m.vocab)];
    let start = 0;
    for (const tokens of steps) {
      const positions = Int32Array.from(tokens, (_, i) => start + i);
      const want = interpret(unfused, w, kv, { tokens, positions }).get(unfused.logits)!;
      const got = await engine.forward(tokens, positions);
      expect(relErr(got, want)).toBeLessThan(1e-4);
      await cpu.forward(tokens, positions);
      start += tokens.length;
    }
    const st = engine.moeStats()!;
    expect(st.layers.map((l) => l.counts.reduce((a, b) => a + b, 0))).toEqual(Array(s.layers).fill((s.T + 1) * s.topK));
    // Per layer and expert, the device's counts are the interpreter's.
    expect(st.layers.map((l) => l.counts)).toEqual(cpu.moeStats()!.layers.map((l) => l.counts));
  } finally {
    engine.dispose();
    cpu.dispose();
  }
}), { numRuns: Math.max(3, Math.floor(RUNS / 2)) }));

it('a decode step on the device never reads an unchosen expert: their weights are NaN and the logits stay exact', () => fc.assert(fc.asyncProperty(moeShapeArb(32).map((s) => ({ ...s, topK: Math.min(s.topK, s.experts - 1) })), async (s) => {
  const { unfused, graph, program } = compileMoe(s);
  const w = moeWeights(unfused, s.seed);
  const m = graph.model;
  const tokens = Int32Array.of(2 % m.vocab), positions = Int32Array.of(0);
  const vals = interpret(graph, w, new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext), { tokens, positions });
  const poisoned = new Map(w.tensors);
  let poisonedExperts = 0;
  graph.nodes.filter((n) => n.op === 'moe_route').forEach((r, l) => {
    const chosen = new Set(Array.from(vals.get(r)!).filter((_, i) => i % 2 === 1));
    for (const p of graph.params.filter((q) => q.name.startsWith(`blk.${l}.`) && q.shape.length === 3)) {
      const t = Float32Array.from(w.get(p.name));
      const per = p.shape[0] * p.shape[1];
      for (let e = 0; e < s.experts; e++) if (!chosen.has(e)) { t.fill(NaN, e * per, (e + 1) * per); poisonedExperts++; }
      poisoned.set(p.name, t);
    }
  });
  expect(poisonedExperts).toBeGreaterThan(0);
  const engine = await WebGpuEngine.create({ device, program: program!, backend: wgslBackend, weights: { get: (n) => poisoned.get(n)! } });
  try {
    const got = await engine.forward(tokens, positions);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(relErr(got, vals.get(graph.logits)!)).toBeLessThan(1e-4);
  } finally {
    engine.dispose();
  }
}), { numRuns: 3 }));
