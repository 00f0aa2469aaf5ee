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
import { runKernelsOnCpu, runOnCpu } from './emulate.ts';
import { EPILOGUE_FORMATS, epilogueCase, expectEpilogue } from '../gpu/epilogueCase.ts';

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

// A weight split into column parts (compiler/splitParams.ts): each part's kernel computes its
// columns of the whole rows (outCols wide, the residual's rows too). The parts run into one
// output, the second part first; the second part also runs alone into rows pre-filled with a
// sentinel, which must survive outside its columns.
describe('CUDA matmul over a split weight (colOffset / outCols)', () => {
  it('every variant, weight type and prologue: the parts together equal the interpreter, and a part writes only its columns', () => {
    fc.assert(fc.property(
      fc.constantFrom('gemv', 'gemv4', 'tiled'), fc.constantFrom(...WTYPES), fc.constantFrom(...PROLOGUES), fc.boolean(),
      fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1 << 30 }),
      (variant, wtype, prologue, residual, kBlocks, N0, N1, seed) => {
        const next = rng(seed);
        const T = variant === 'gemv' ? 1 : variant === 'gemv4' ? 2 + (seed % 6) : 8 + (seed % 30);
        const K = wtype === 'f32' && seed % 2 ? 32 * kBlocks - 3 : 32 * kBlocks, N = N0 + N1;
        // The parts' weights drawn apart (block weights are packed per part, as splitParams packs them); rows are columns n.
        const parts = [N0, N1].map((n) => (wtype === 'f32' ? { values: data(next, K * n, 1 / Math.sqrt(K)), packed: null } : blockWeights(wtype, next, K * n, 1 / Math.sqrt(K))));
        const whole = new Float32Array(K * N);
        whole.set(parts[0].values, 0);
        whole.set(parts[1].values, K * N0);
        const { inputs, want, eps } = matmulCase(next, whole, K, N, T, prologue, residual);
        const specs = [{ colOffset: 0, n: N0 }, { colOffset: N0, n: N1 }].map(({ colOffset, n }): KernelSpec =>
          ({ kind: 'matmul', K, N: n, prologue, eps, residual, ...(wtype === 'f32' ? {} : { wtype }), colOffset, outCols: N }));
        const kernel = (s: KernelSpec) => cudaBackend.render(kernelKey(s), s).find((v) => v.key.endsWith(`.${variant}`))!;
        const SENTINEL = 7;
        const got = runKernelsOnCpu([
          { kernel: kernel(specs[1]), spec: specs[1], bind: { w: 'w1' } },
          { kernel: kernel(specs[0]), spec: specs[0], bind: { w: 'w0' } },
          { kernel: kernel(specs[1]), spec: specs[1], bind: { w: 'w1', out: 'alone' } },
        ], T, { ...inputs, w0: parts[0].packed ?? parts[0].values, w1: parts[1].packed ?? parts[1].values }, { out: T * N, alone: new Float32Array(T * N).fill(SENTINEL) });
        const what = `${variant} ${wtype} ${prologue}${residual ? '+residual' : ''} K=${K} N=${N0}+${N1} T=${T}`;
        expectClose(got.out, want, TOL, what);
        const outside = Array.from(got.alone).filter((_, i) => i % N < N0);
        expect(outside, `${what}: the second part wrote outside its columns`).toEqual(new Array(T * N0).fill(SENTINEL));
        expectClose(Array.from(got.alone).filter((_, i) => i % N >= N0), Array.from(want).filter((_, i) => i % N >= N0), TOL, `${what} (second part alone)`);
      }), { numRuns: RUNS + 2 });
  }, 180_000);
});

// The bias / softcap epilogue (fuseBias.ts, fuseSoftcap.ts) in every variant, after any
// prologue, before any residual, with the weight types CUDA reads (WTYPES) and in a column part of a
// split weight: the case and its f32 error bound are the WebGPU test's (test/gpu/epilogueCase.ts).
describe('CUDA matmul epilogue: bias and softcap', () => {
  it('every variant equals the interpreter within the f32 bound, and a part writes only its columns', () => {
    fc.assert(fc.property(
      fc.constantFrom('gemv', 'gemv4', 'tiled'), fc.constantFrom(...EPILOGUE_FORMATS.filter((f) => (WTYPES as readonly string[]).includes(f))), fc.constantFrom(...PROLOGUES), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 70 }),
      fc.boolean(), fc.option(fc.constantFrom(0.5, 3, 30), { nil: undefined }), fc.boolean(), fc.option(fc.record({ before: fc.integer({ min: 1, max: 20 }), after: fc.integer({ min: 0, max: 20 }) }), { nil: undefined }),
      fc.integer({ min: 0, max: 1 << 30 }),
      (variant, format, prologue, units, N, bias, softcap, residual, part, seed) => {
        if (!bias && softcap === undefined) return;
        const T = variant === 'gemv' ? 1 : variant === 'gemv4' ? 2 + (seed % 6) : 8 + (seed % 33);
        const e = epilogueCase({ format, units, N, T, prologue, bias, softcap, residual, part, next: rng(seed) });
        const kernel = cudaBackend.render(kernelKey(e.spec), e.spec).find((v) => v.key.endsWith(`.${variant}`))!;
        const got = runOnCpu(kernel, e.spec, T, e.inputs, { out: T * e.outCols });
        expectEpilogue(e, got.out, `cuda ${variant} ${e.label}`);
      }), { numRuns: RUNS + 2 });
  }, 180_000);
});
