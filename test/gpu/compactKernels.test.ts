// Compact weights read in registers: f16 (through shader-f16, and through the u32-pair
// fallback for adapters without it: both paths run here) and the K-quants q4_K, q5_K,
// q6_K, against the float64 interpreter run on the exact values the device holds
// (ggufQuant.ts's decoders of the same bytes). Every kernel that reads weights: GEMV
// (decode), the 4-token GEMV, the tiled matmul (random prologue and residual per run),
// the embedding gather, and the MoE expert kernels (fused, every input mode, and dense).
// Dequantisation is exact in f32 here (an f16 widened; d*scale*q with at most one
// rounding, the same IEEE f32 operations the CPU decoder does), so the error is the f32
// accumulation of K <= 512 products (K * 2^-24 < 3.1e-5 of the sum of |products|): the
// 1e-4 of max |want| bound kernels.test.ts and quantKernels.test.ts use.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelSpec } from '../../program/kernels.ts';
import { blockElements, type CompactType } from '../../program/quant.ts';
import { createGpuDevice, targetOf } from '../../runtime/webgpu/device.ts';
import { CPU_TARGET, GPU_TARGET, type Target } from '../../backends/backend.ts';
import { blockWeights, data, expectClose, gpuProp, matmulCase, moeExpertsCase, oracle, rng, runOnGpu, seedArb, variants } from './harness.ts';

const TOL = 1e-4;
// Each run compiles its pipelines (the cost on lavapipe): 2 per property by default, more with the variable.
const RUNS = Number(process.env.INFER_GPU_QUANT_RUNS ?? 2);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

/** A weight format as a kernel sees it: the type, and for f16 whether shader-f16 is used. */
interface Format { readonly name: string; readonly wtype: CompactType; readonly f16: boolean }
const FORMATS: readonly Format[] = [
  { name: 'f16 (shader-f16)', wtype: 'f16', f16: true },
  { name: 'f16 (u32 pairs)', wtype: 'f16', f16: false },
  { name: 'q4_K', wtype: 'q4_K', f16: false },
  { name: 'q5_K', wtype: 'q5_K', f16: false },
  { name: 'q6_K', wtype: 'q6_K', f16: false },
];

const targetFor = (f: Format, cpu: boolean): Target => ({ ...(cpu ? CPU_TARGET : GPU_TARGET), f16: f.f16 });

/** The source reads the weights the way the format says (so the fallback is really exercised). */
function expectPath(f: Format, source: string, binding = 'w'): void {
  if (f.wtype === 'f16' && f.f16) {
    expect(source.startsWith('enable f16;')).toBe(true);
    expect(source).toContain(`var<storage, read> ${binding}: array<vec4<f16>>;`);
  } else {
    expect(source).not.toContain('enable f16');
    expect(source).toContain(`var<storage, read> ${binding}: array<u32>;`);
    if (f.wtype === 'f16') expect(source).toContain('unpack2x16float');
  }
}

/** Multiples of the format's unit along K: up to 2 K-quant blocks (512), or up to 200 f16 values. */
const kArb = (f: Format) => fc.integer({ min: 1, max: f.wtype === 'f16' ? 50 : 2 }).map((m) => m * blockElements(f.wtype));

for (const f of FORMATS) {
  describe(f.name, () => {
    for (const variant of ['gemv', 'gemv4', 'tiled'] as const) {
      it(`matmul ${variant} (random prologue and residual)`, () => gpuProp(fc.record({
        // Tiled: up to 2 x 2 tiles of 32 tokens x 64 columns (edges included); GEMV: over 4-token groups.
        K: kArb(f), N: fc.integer({ min: 1, max: variant === 'tiled' ? 80 : 40 }), T: fc.integer({ min: 1, max: variant === 'tiled' ? 36 : 9 }),
        prologue: fc.constantFrom('none', 'rmsnorm', 'silu_mul' as const), residual: fc.boolean(), cpu: fc.boolean(), seed: seedArb,
      }), async ({ K, N, T, prologue, residual, cpu, seed }) => {
        const next = rng(seed);
        const w = blockWeights(f.wtype, next, K * N, 1 / Math.sqrt(K));
        const { inputs, want, eps } = matmulCase(next, w.values, K, N, T, prologue, residual);
        const spec: KernelSpec = { kind: 'matmul', K, N, prologue, eps, residual, wtype: f.wtype };
        const rendered = variants(spec, targetFor(f, cpu)).get(variant)!;
        expectPath(f, rendered.source);
        const got = await runOnGpu(device, rendered, T, { ...inputs, w: w.packed }, { out: T * N });
        expectClose(got.out, want, TOL, `${f.name} ${variant} ${prologue}${residual ? ' residual' : ''} K=${K} N=${N} T=${T}`);
      }, variant === 'tiled' ? Math.max(1, RUNS - 1) : RUNS));
    }

    // A CPU adapter with subgroups: the subgroup GEMV and the subgroup-tiled kernel in tiles of 1, 2 and 4 token groups.
    it('matmul subgroup GEMV and tiled (every variant on each case; random prologue and residual)', () => {
      const target: Target = { ...targetFor(f, true), subgroupSize: targetOf(device).subgroupSize };
      expect(target.subgroupSize, "the adapter's subgroup size (the subgroups feature, one fixed size)").toBeGreaterThan(0);
      const keys = ['gemv', `sg${target.subgroupSize}`, 'tiled', `sg${4 * target.subgroupSize!}`];
      return gpuProp(fc.record({
        K: kArb(f), N: fc.integer({ min: 1, max: 80 }), T: fc.integer({ min: 1, max: 40 }),
        prologue: fc.constantFrom('none', 'rmsnorm', 'silu_mul' as const), residual: fc.boolean(), seed: seedArb,
      }), async ({ K, N, T, prologue, residual, seed }) => {
        const next = rng(seed);
        const w = blockWeights(f.wtype, next, K * N, 1 / Math.sqrt(K));
        const { inputs, want, eps } = matmulCase(next, w.values, K, N, T, prologue, residual);
        const all = variants({ kind: 'matmul', K, N, prologue, eps, residual, wtype: f.wtype }, target);
        for (const variant of keys) {
          const rendered = all.get(variant)!;
          expectPath(f, rendered.source);
          expect(rendered.source).toContain('subgroupBroadcast');
          const got = await runOnGpu(device, rendered, T, { ...inputs, w: w.packed }, { out: T * N });
          expectClose(got.out, want, TOL, `${f.name} ${variant} ${prologue}${residual ? ' residual' : ''} K=${K} N=${N} T=${T}`);
        }
      }, Math.max(1, RUNS - 1));
    });

    it('embed (a gather: exact)', () => gpuProp(fc.record({
      dim: kArb(f), vocab: fc.integer({ min: 1, max: 30 }), T: fc.integer({ min: 1, max: 12 }), seed: seedArb,
    }), async ({ dim, vocab, T, seed }) => {
      const next = rng(seed);
      const table = blockWeights(f.wtype, next, dim * vocab, 1);
      // Ids past the vocabulary give zero rows.
      const tokens = Int32Array.from({ length: T }, () => Math.floor(next() * (vocab + 1)));
      const want = new Float32Array(T * dim);
      tokens.forEach((id, t) => { if (id < vocab) want.set(table.values.subarray(id * dim, (id + 1) * dim), t * dim); });
      const rendered = variants({ kind: 'embed', dim, vocab, wtype: f.wtype }, targetFor(f, false)).get('')!;
      expectPath(f, rendered.source, 'table');
      const got = await runOnGpu(device, rendered, T, { tokens, table: table.packed }, { out: T * dim });
      expect(Array.from(got.out)).toEqual(Array.from(want));
    }, RUNS));

    it('moe_experts, every input mode, per slot or combined (+ residual)', () => gpuProp(fc.record({
      input: fc.constantFrom('shared', 'slot', 'silu_mul', 'swiglu' as const), E: fc.integer({ min: 2, max: 6 }), k0: fc.integer({ min: 1, max: 3 }),
      K: kArb(f), N: fc.integer({ min: 1, max: 40 }), T: fc.integer({ min: 1, max: 8 }), combine: fc.boolean(), res0: fc.boolean(), seed: seedArb,
    }), async ({ input, E, k0, K, N, T, combine, res0, seed }) => {
      const c = moeExpertsCase({ type: f.wtype, input, E, k: Math.min(k0, E), K, N, T, combine, residual: combine && res0, next: rng(seed) });
      const rendered = variants(c.spec, targetFor(f, false)).get('')!;
      expectPath(f, rendered.source);
      const got = await runOnGpu(device, rendered, T, c.inputs, { out: c.outLength });
      expectClose(got.out, c.want, TOL, `${f.name}: ${c.label}`);
    }, RUNS));

    it('moe_experts dense (the unfused expert_matmul)', () => gpuProp(fc.record({
      slot: fc.boolean(), E: fc.integer({ min: 1, max: 5 }), K: kArb(f), N: fc.integer({ min: 1, max: 40 }), T: fc.integer({ min: 1, max: 6 }), seed: seedArb,
    }), async ({ slot, E, K, N, T, seed }) => {
      const next = rng(seed);
      const w = blockWeights(f.wtype, next, K * N * E, 1 / Math.sqrt(K));
      const x = data(next, (slot ? T * E : T) * K);
      const want = oracle({ params: { x, w: w.values }, tokens: new Int32Array(T), positions: new Int32Array(T) },
        (b, p) => b.node('expert_matmul', {}, [p('x', slot ? [T, E, K] : [T, K]), p('w', [K, N, E])]));
      const spec: KernelSpec = { kind: 'moe_experts', K, N, experts: E, k: E, dense: true, input: slot ? 'slot' : 'shared', combine: false, residual: false, wtype: f.wtype };
      const rendered = variants(spec, targetFor(f, false)).get('')!;
      expectPath(f, rendered.source);
      const got = await runOnGpu(device, rendered, T, { x, w: w.packed }, { out: T * E * N });
      expectClose(got.out, want, TOL, `${f.name} dense expert_matmul${slot ? ' per expert' : ''} E=${E} K=${K} N=${N} T=${T}`);
    }, RUNS));
  });
}
