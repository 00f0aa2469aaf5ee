// The quantised-weight kernels (q8_0 and q4_0 blocks dequantised in registers) against
// the float64 interpreter run on the dequantised weights: GEMV and tiled matmul with
// every prologue and residual variant, and the embedding gather (tied outputs keep
// token_embd quantised). Weights are random f32 values quantised by ggml's reference
// quantisers (ggufQuant.ts), uploaded in the device layout (program/quant.ts packBlocks).
// Dequantisation is exact in f32, so the bound is the f32 one of kernels.test.ts.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelSpec } from '../../program/kernels.ts';
import type { QuantType } from '../../program/quant.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { dequantize, quantize } from '../../runtime/weights/ggufQuant.ts';
import { packBlocks, unpackBlocks } from '../../program/quant.ts';
import { blockWeights, data, expectClose, matmulCase, moeExpertsCase, oracle, rng, runOnGpu, variants, gpuProp, seedArb } from './harness.ts';
import { CPU_TARGET, GPU_TARGET } from '../../backends/backend.ts';

const TOL = 1e-4;
const RUNS = Number(process.env.INFER_GPU_QUANT_RUNS ?? 4);
// The tiled kernel costs about three times as much per run (bigger shapes, slower to compile).
const TILED_RUNS = Math.max(1, RUNS - 1);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const prop = <T>(arb: fc.Arbitrary<T>, body: (c: T) => Promise<void>, runs = RUNS) => gpuProp(arb, body, runs);
const seed = seedArb;

/** Random weights as blocks: the device words and the exact values they stand for. */
it('packBlocks round-trips and keeps the file size (34 / 18 bytes per 32 weights)', () => {
  fc.assert(fc.property(fc.constantFrom<QuantType>('q8_0', 'q4_0'), fc.integer({ min: 1, max: 40 }), seed, (type, blocks, s) => {
    const raw = quantize(type, data(rng(s), 32 * blocks));
    const packed = packBlocks(type, raw, 32 * blocks);
    expect(Array.from(unpackBlocks(type, packed, 32 * blocks))).toEqual(Array.from(raw));
    expect(packed.byteLength - raw.length).toBeGreaterThanOrEqual(0);
    expect(packed.byteLength - raw.length).toBeLessThanOrEqual(2);
  }), { numRuns: 30 });
});

describe('quantised matmul', () => {
  // K a multiple of 32 (blocks run along K): one block up to several staged GEMV chunks.
  const shape = (maxT: number) => fc.record({
    blocks: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 30, max: 70 })),
    N: fc.integer({ min: 1, max: 90 }), T: fc.integer({ min: 1, max: maxT }), seed, cpu: fc.boolean(),
  }).map((c) => ({ ...c, K: 32 * c.blocks, N: c.blocks > 12 ? Math.min(c.N, 12) : c.N }));
  for (const wtype of ['q8_0', 'q4_0'] as const) {
    for (const variant of ['gemv', 'gemv4', 'tiled'] as const) {
      for (const prologue of ['none', 'rmsnorm', 'silu_mul'] as const) {
        for (const residual of [false, true]) {
          it(`${wtype} ${variant}, prologue ${prologue}${residual ? ', residual' : ''}`, () => prop(shape(variant === 'tiled' ? 40 : 10), async ({ K, N, T, seed, cpu }) => {
            const next = rng(seed);
            const w = blockWeights(wtype, next, K * N, 1 / Math.sqrt(K));
            const { inputs: t, want, eps } = matmulCase(next, w.values, K, N, T, prologue, residual);
            const spec: KernelSpec = { kind: 'matmul', K, N, prologue, eps, residual, wtype };
            const rendered = variants(spec, cpu ? CPU_TARGET : GPU_TARGET).get(variant)!;
            expect(rendered.source).toContain('array<u32>');
            const got = await runOnGpu(device, rendered, T, { ...t, w: w.packed }, { out: T * N });
            expectClose(got.out, want, TOL, `${wtype} ${variant} K=${K} N=${N} T=${T} ${cpu ? 'cpu' : 'gpu'}-tuned`);
          }, variant === 'tiled' ? TILED_RUNS : RUNS));
        }
      }
    }
  }
});

it('quantised embed (q8_0, q4_0)', () => prop(fc.record({
  wtype: fc.constantFrom<QuantType>('q8_0', 'q4_0'), dim: fc.integer({ min: 1, max: 6 }).map((b) => 32 * b),
  vocab: fc.integer({ min: 1, max: 50 }), T: fc.integer({ min: 1, max: 12 }), seed,
}), async ({ wtype, dim, vocab, T, seed }) => {
  const next = rng(seed);
  const table = blockWeights(wtype, next, dim * vocab, 1);
  const tokens = Int32Array.from({ length: T }, () => Math.floor(next() * vocab));
  const want = oracle({ params: { table: table.values }, tokens, positions: new Int32Array(T) }, (b, p) => b.node('embed', {}, [b.tokens(), p('table', [dim, vocab])]));
  const got = await runOnGpu(device, variants({ kind: 'embed', dim, vocab, wtype }).get('')!, T, { tokens, table: table.packed }, { out: T * dim });
  // A gather: exact.
  expect(Array.from(got.out)).toEqual(Array.from(want));
}, 2 * RUNS));

// Block experts: the [K, N, E] tensor quantised as the flat [K, N * E] matrix (GGUF's
// order), expert e's blocks starting at block e*N*K/32. Every input mode of the fused
// kernel (per slot, combined, + residual) and the dense one the unfused path renders.
describe('quantised moe_experts', () => {
  type Input = 'shared' | 'slot' | 'silu_mul' | 'swiglu';
  /** A routing [T, k, 2]: each token's k distinct experts with positive weights. */
  const caseArb = fc.record({
    wtype: fc.constantFrom<QuantType>('q8_0', 'q4_0'), E: fc.integer({ min: 2, max: 12 }), k0: fc.integer({ min: 1, max: 4 }),
    blocks: fc.integer({ min: 1, max: 5 }), N: fc.integer({ min: 1, max: 80 }), T: fc.integer({ min: 1, max: 10 }),
    combine: fc.boolean(), residual: fc.boolean(), seed,
  });
  for (const input of ['shared', 'slot', 'silu_mul', 'swiglu'] as const satisfies readonly Input[]) {
    it(`${input}, per slot or combined (+ residual)`, () => prop(caseArb, async ({ wtype, E, k0, blocks, N, T, combine, residual: res0, seed }) => {
      const c = moeExpertsCase({ type: wtype, input, E, k: Math.min(k0, E), K: 32 * blocks, N, T, combine, residual: combine && res0, next: rng(seed) });
      const rendered = variants(c.spec).get('')!;
      expect(rendered.source).toMatch(/var<storage, read> w: array<u32>;/);
      const got = await runOnGpu(device, rendered, T, c.inputs, { out: c.outLength });
      expectClose(got.out, c.want, TOL, c.label);
    }));
  }

  it('dense (the unfused expert_matmul), shared and per-expert input', () => prop(fc.record({
    wtype: fc.constantFrom<QuantType>('q8_0', 'q4_0'), slot: fc.boolean(), E: fc.integer({ min: 1, max: 8 }),
    blocks: fc.integer({ min: 1, max: 4 }), N: fc.integer({ min: 1, max: 70 }), T: fc.integer({ min: 1, max: 9 }), seed,
  }), async ({ wtype, slot, E, blocks, N, T, seed }) => {
    const K = 32 * blocks, next = rng(seed);
    const w = blockWeights(wtype, next, K * N * E, 1 / Math.sqrt(K));
    const x = data(next, (slot ? T * E : T) * K);
    const want = oracle({ params: { x, w: w.values }, tokens: new Int32Array(T), positions: new Int32Array(T) },
      (b, p) => b.node('expert_matmul', {}, [p('x', slot ? [T, E, K] : [T, K]), p('w', [K, N, E])]));
    const spec: KernelSpec = { kind: 'moe_experts', K, N, experts: E, k: E, dense: true, input: slot ? 'slot' : 'shared', combine: false, residual: false, wtype };
    const got = await runOnGpu(device, variants(spec).get('')!, T, { x, w: w.packed }, { out: T * E * N });
    expectClose(got.out, want, TOL, `${wtype} dense expert_matmul${slot ? ' per expert' : ''} E=${E} K=${K} N=${N} T=${T}`);
  }));
});
