// The CUDA backend's matmul (decode GEMV; rmsnorm / silu_mul / gelu_mul prologues, residual epilogue,
// f32 and q8_0 / q4_0 block weights in the WGSL kernels' device layout): every variant
// compiles with nvcc for sm_90, and computes what the float64 interpreter does, run on the
// CPU through emu/cuda_emu.h (this machine has nvcc but no GPU). Never skipped: a missing
// nvcc or g++ fails.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cudaBackend, CudaUnsupported } from '../../backends/cuda/render.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { blockWeights, data, expectClose, matmulCase, rng } from '../gpu/harness.ts';
import { nvccCompile, runOnCpu } from './emulate.ts';

const TOL = 1e-4;
const PROLOGUES = ['none', 'rmsnorm', 'silu_mul', 'gelu_mul'] as const;
const WTYPES = ['f32', 'q8_0', 'q4_0'] as const;

const render = (spec: KernelSpec) => cudaBackend.render(kernelKey(spec), spec)[0];

describe('CUDA matmul', () => {
  it('every variant compiles with nvcc (sm_90 cubin)', () => {
    const sources: { name: string; source: string }[] = [];
    for (const wtype of WTYPES) for (const prologue of PROLOGUES) for (const residual of [false, true]) {
      // K a multiple of 32 (blocks), and an odd K for the scalar f32 path.
      for (const K of wtype === 'f32' ? [64, 37] : [64]) {
        const spec: KernelSpec = { kind: 'matmul', K, N: 20, prologue, eps: 1e-5, residual, ...(wtype === 'f32' ? {} : { wtype }) };
        sources.push({ name: kernelKey(spec), source: render(spec).source });
      }
    }
    expect(sources.length).toBe(32);
    nvccCompile(sources);
  }, 120_000);

  for (const wtype of WTYPES) {
    it(`${wtype} weights: every prologue and epilogue equals the interpreter (run on the CPU emulation)`, () => {
      fc.assert(fc.property(
        fc.constantFrom(...PROLOGUES), fc.boolean(), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 1 << 30 }),
        (prologue, residual, kBlocks, N, T, seed) => {
          const next = rng(seed);
          // f32 also takes K that is not a multiple of 4 (the scalar path).
          const K = wtype === 'f32' && seed % 2 ? 32 * kBlocks - 3 : 32 * kBlocks;
          const w = wtype === 'f32' ? { values: data(next, K * N, 1 / Math.sqrt(K)), packed: null } : blockWeights(wtype, next, K * N, 1 / Math.sqrt(K));
          const { inputs, want, eps } = matmulCase(next, w.values, K, N, T, prologue, residual);
          const spec: KernelSpec = { kind: 'matmul', K, N, prologue, eps, residual, ...(wtype === 'f32' ? {} : { wtype }) };
          const got = runOnCpu(render(spec), spec, T, { ...inputs, ...(w.packed ? { w: w.packed } : {}) }, { out: T * N });
          expectClose(got.out, want, TOL, `${wtype} ${prologue}${residual ? '+residual' : ''} K=${K} N=${N} T=${T}`);
        }), { numRuns: 4 });
    }, 180_000);
  }

  it('kinds without a CUDA template are refused by name, not rendered wrong', () => {
    expect(() => render({ kind: 'rmsnorm', dim: 8, eps: 1e-5 })).toThrow(CudaUnsupported);
    expect(() => render({ kind: 'rmsnorm', dim: 8, eps: 1e-5 })).toThrow(/no rmsnorm kernel yet/);
    expect(() => render({ kind: 'matmul', K: 40, N: 4, prologue: 'none', eps: 0, residual: false, wtype: 'q8_0' })).toThrow(/multiple of 32/);
  });
});
