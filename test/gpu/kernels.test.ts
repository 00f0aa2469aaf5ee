// Every WGSL kernel kind and variant against the IR interpreter, on a real WebGPU
// device (lavapipe here): fast-check draws shapes (non-multiples of 4 and of the
// workgroup sizes included), data and positions; the GPU result must match the
// float64 interpreter within TOL, relative to the output's largest magnitude.
// No adapter is a failure, never a skip. INFER_GPU_RUNS=n sets the runs per property
// (default 12, about 100 s here; elementwise gets twice as many).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ElementwiseExpr, KernelSpec } from '../../program/kernels.ts';
import { createGpuDevice, targetOf } from '../../runtime/webgpu/device.ts';
import { data, expectClose, expectCloseEach, matmulCase, oracle, rng, runOnGpu, variants, gpuProp, seedArb } from './harness.ts';
import { exprArb, f32Conditioned, graphOfExpr } from './exprArb.ts';
import { CPU_TARGET, GPU_TARGET } from '../../backends/backend.ts';

/** Max |gpu - cpu| / max |cpu| allowed: f32 accumulation over K <= 2600 stays near 1e-6. */
const TOL = 1e-4;
const RUNS = Number(process.env.INFER_GPU_RUNS ?? 12);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const prop = <T>(arb: fc.Arbitrary<T>, body: (c: T) => Promise<void>, runs = RUNS) => gpuProp(arb, body, runs);
const seed = seedArb;

it("runs with V8's optimising compiler on (no --no-opt workaround: device.ts holds Dawn's GPU object)", () => {
  expect(process.execArgv).not.toContain('--no-opt');
});

it('embed', () => prop(fc.record({ dim: fc.integer({ min: 1, max: 150 }), vocab: fc.integer({ min: 1, max: 60 }), T: fc.integer({ min: 1, max: 20 }), seed }), async ({ dim, vocab, T, seed }) => {
  const next = rng(seed);
  const table = data(next, dim * vocab);
  const tokens = Int32Array.from({ length: T }, () => Math.floor(next() * vocab));
  const want = oracle({ params: { table }, tokens, positions: new Int32Array(T) }, (b, p) => b.node('embed', {}, [b.tokens(), p('table', [dim, vocab])]));
  const got = await runOnGpu(device, variants({ kind: 'embed', dim, vocab }).get('')!, T, { tokens, table }, { out: T * dim });
  expectClose(got.out, want, TOL, 'embed');
}));

it('rmsnorm', () => prop(fc.record({ dim: fc.integer({ min: 1, max: 700 }), eps: fc.constantFrom(1e-5, 1e-6, 0.25), T: fc.integer({ min: 1, max: 20 }), seed }), async ({ dim, eps, T, seed }) => {
  const next = rng(seed);
  const x = data(next, T * dim, 3), weight = data(next, dim);
  const want = oracle({ params: { x, weight }, tokens: new Int32Array(T), positions: new Int32Array(T) },
    (b, p) => b.node('rmsnorm', { eps }, [p('x', [T, dim]), p('weight', [dim])]));
  const got = await runOnGpu(device, variants({ kind: 'rmsnorm', dim, eps }).get('')!, T, { x, weight }, { out: T * dim });
  expectClose(got.out, want, TOL, 'rmsnorm');
}));

describe('matmul', () => {
  // K: any, multiples of 4 (vec4 GEMV), and long rows (several staged chunks / K tiles).
  const shape = (maxT: number) => fc.record({
    K: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 80 }).map((k) => 4 * k), fc.integer({ min: 1000, max: 2600 })),
    N: fc.integer({ min: 1, max: 150 }), T: fc.integer({ min: 1, max: maxT }), seed, cpu: fc.boolean(),
  }).map((c) => ({ ...c, N: c.K > 500 ? Math.min(c.N, 12) : c.N })); // keep the float64 oracle quick
  for (const variant of ['gemv', 'gemv4', 'tiled'] as const) {
    for (const prologue of ['none', 'rmsnorm', 'silu_mul'] as const) {
      for (const residual of [false, true]) {
        // The tiled kernel also sees T > 32 (several token tiles) and T < 8 (below its minTokens).
        it(`${variant}, prologue ${prologue}${residual ? ', residual' : ''}`, () => prop(shape(variant === 'tiled' ? 40 : 20), async ({ K, N, T, seed, cpu }) => {
          const next = rng(seed);
          const { inputs: t, want, eps } = matmulCase(next, data(next, K * N, 1 / Math.sqrt(K)), K, N, T, prologue, residual);
          const spec: KernelSpec = { kind: 'matmul', K, N, prologue, eps, residual };
          const got = await runOnGpu(device, variants(spec, cpu ? CPU_TARGET : GPU_TARGET).get(variant)!, T, t, { out: T * N });
          expectClose(got.out, want, TOL, `${variant} K=${K} N=${N} T=${T} ${cpu ? 'cpu' : 'gpu'}-tuned`);
        }));
      }
    }
  }
  // A CPU adapter with subgroups (lavapipe: 8 lanes) runs decode on the subgroup GEMV and
  // every multi-token step on the subgroup-tiled kernel, in tiles of 1, 2 and 4 subgroups of
  // tokens (sgS, tiled, sg4S).
  for (const prologue of ['none', 'rmsnorm', 'silu_mul'] as const) {
    it(`subgroup GEMV and tiled, prologue ${prologue} (tiles of 1, 2 and 4 token groups; residual or not)`, () => {
      const target = { ...CPU_TARGET, subgroupSize: targetOf(device).subgroupSize };
      expect(target.subgroupSize, "the adapter's subgroup size (the subgroups feature, one fixed size)").toBeGreaterThan(0);
      const keys = ['gemv', `sg${target.subgroupSize}`, 'tiled', `sg${4 * target.subgroupSize!}`];
      return prop(fc.tuple(shape(70), fc.constantFrom(...keys), fc.boolean()), async ([{ K, N, T, seed }, variant, residual]) => {
        const next = rng(seed);
        const { inputs: t, want, eps } = matmulCase(next, data(next, K * N, 1 / Math.sqrt(K)), K, N, T, prologue, residual);
        const rendered = variants({ kind: 'matmul', K, N, prologue, eps, residual }, target).get(variant)!;
        expect(rendered.source).toContain('subgroupBroadcast');
        const got = await runOnGpu(device, rendered, T, t, { out: T * N });
        expectClose(got.out, want, TOL, `${variant} K=${K} N=${N} T=${T} subgroups of ${target.subgroupSize}`);
      });
    });
  }
});

it('rope (positions up to 8191)', () => prop(fc.record({
  heads: fc.integer({ min: 1, max: 8 }), headDim: fc.integer({ min: 1, max: 64 }).map((d) => 2 * d), T: fc.integer({ min: 1, max: 20 }),
  theta: fc.constantFrom(10000, 500000, 1e6, 77.5), start: fc.integer({ min: 0, max: 8191 - 20 }), seed,
}), async ({ heads, headDim, T, theta, start, seed }) => {
  const next = rng(seed);
  const x = data(next, T * heads * headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  const want = oracle({ params: { x }, tokens: new Int32Array(T), positions }, (b, p) => b.node('rope', { theta }, [p('x', [T, heads, headDim]), b.positions()]));
  const got = await runOnGpu(device, variants({ kind: 'rope', heads, headDim, theta }).get('')!, T, { x, positions }, { out: T * heads * headDim });
  expectClose(got.out, want, TOL, 'rope');
}));

// kv_append and paged attention: test/gpu/pagedAttention.test.ts.

it('elementwise (random expressions over every unary and binary function)', () => prop(fc.record({
  inputs: fc.integer({ min: 1, max: 3 }), width: fc.integer({ min: 1, max: 200 }), T: fc.integer({ min: 1, max: 20 }), seed,
}).chain((c) => exprArb(c.inputs).map((expr) => ({ ...c, expr }))), async ({ inputs, width, T, seed, expr }) => {
  const next = rng(seed);
  const ins: Record<string, Float32Array> = {};
  for (let i = 0; i < inputs; i++) ins[`in${i}`] = data(next, T * width, 2);
  // Skip expressions that f32 itself cannot evaluate to TOL (cancellation, overflow).
  fc.pre(f32Conditioned(expr, ins, T * width, TOL));
  const want = oracle({ params: ins, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => graphOfExpr(expr as ElementwiseExpr, b, (i) => p(`in${i}`, [T, width])));
  const got = await runOnGpu(device, variants({ kind: 'elementwise', width, inputs, expr }).get('')!, T, ins, { out: T * width });
  expectCloseEach(got.out, want, TOL, JSON.stringify(expr));
}, RUNS * 2));
