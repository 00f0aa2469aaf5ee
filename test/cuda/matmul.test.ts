// The CUDA backend's matmul variants (decode GEMV, 4-token GEMV, tiled prefill kernel) with
// every prologue (none, rmsnorm, silu_mul, gelu_mul), the residual epilogue and f32 / q8_0 / q4_0 block
// weights in the WGSL kernels' device layout, against the float64 interpreter, run on the CPU
// through the CUDA emulation (this machine has nvcc but no GPU; compile.test.ts builds the same
// sources with nvcc). Never skipped: a missing g++ fails.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickVariant } from '../../backends/backend.ts';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { blockWeights, data, expectClose, matmulCase, rng } from '../gpu/harness.ts';
import { runOnCpu } from './emulate.ts';

const TOL = 1e-4;
// Two cases per (variant, weight type): 18 compiles of a test program, each drawing its prologue and epilogue.
const RUNS = Number(process.env.INFER_CUDA_RUNS ?? 2);
const PROLOGUES = ['none', 'rmsnorm', 'silu_mul', 'gelu_mul'] as const;
const WTYPES = ['f32', 'q8_0', 'q4_0'] as const;
/** Tokens each variant is drawn with: its own range (the tiled kernel also past one 32-token tile). */
const TOKENS = { gemv: [1, 1], gemv4: [2, 7], tiled: [8, 40] } as const;

describe('CUDA matmul', () => {
  it('has a GEMV for decode, a 4-token GEMV for small batches and a tiled kernel from 8 tokens, as WebGPU', () => {
    const spec: KernelSpec = { kind: 'matmul', K: 64, N: 64, prologue: 'none', eps: 0, residual: false };
    const variants = cudaBackend.render(kernelKey(spec), spec);
    expect(variants.map((v) => [v.key.split('.').at(-1), v.minTokens])).toEqual([['gemv', 1], ['gemv4', 2], ['tiled', 8]]);
    expect(pickVariant(variants, 7).key).toMatch(/\.gemv4$/);
    expect(() => cudaBackend.render('k', { kind: 'matmul', K: 40, N: 4, prologue: 'none', eps: 0, residual: false, wtype: 'q8_0' })).toThrow(/multiple of 32/);
  });

  for (const variant of ['gemv', 'gemv4', 'tiled'] as const) {
    for (const wtype of WTYPES) {
      it(`${variant}, ${wtype} weights: every prologue and epilogue equals the interpreter`, () => {
        fc.assert(fc.property(
          fc.constantFrom(...PROLOGUES), fc.boolean(), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 70 }),
          fc.integer({ min: TOKENS[variant][0], max: TOKENS[variant][1] }), fc.integer({ min: 0, max: 1 << 30 }),
          (prologue, residual, kBlocks, N, T, seed) => {
            const next = rng(seed);
            // f32 also takes K that is not a multiple of 4 (the scalar path).
            const K = wtype === 'f32' && seed % 2 ? 32 * kBlocks - 3 : 32 * kBlocks;
            const w = wtype === 'f32' ? { values: data(next, K * N, 1 / Math.sqrt(K)), packed: null } : blockWeights(wtype, next, K * N, 1 / Math.sqrt(K));
            const { inputs, want, eps } = matmulCase(next, w.values, K, N, T, prologue, residual);
            const spec: KernelSpec = { kind: 'matmul', K, N, prologue, eps, residual, ...(wtype === 'f32' ? {} : { wtype }) };
            const kernel = cudaBackend.render(kernelKey(spec), spec).find((v) => v.key.endsWith(`.${variant}`))!;
            const got = runOnCpu(kernel, spec, T, { ...inputs, ...(w.packed ? { w: w.packed } : {}) }, { out: T * N });
            expectClose(got.out, want, TOL, `${variant} ${wtype} ${prologue}${residual ? '+residual' : ''} K=${K} N=${N} T=${T}`);
          }), { numRuns: RUNS });
      }, 180_000);
    }
  }
});
