// The CUDA kernels that read compact weights: f16 (16-byte loads of 8 halves, or 8-byte loads
// of 4 when K % 8 == 4) and the K-quants q4_K, q5_K, q6_K, in the device layout of
// program/quant.ts (packBlocks / packHalves of random GGUF blocks), run on the CPU through the
// CUDA emulation against the float64 interpreter run on the exact values those blocks hold
// (ggufQuant.ts's decoders, checked against llama.cpp in test/weights/kquant.test.ts and
// test/agreement). Every kernel kind that reads weights, in one program per case: the GEMV,
// the 4-token GEMV and the tiled matmul (on prefixes of one case: random prologue and
// residual), the embedding gather and moe_experts (every input mode, per slot and combined).
// Error bound: an f16 widens exactly and a K-quant weight is d*scale*q (- dmin*min), so the
// weights are exact and the error is f32 accumulation over K <= 1280 products, plus the
// GEMVs' d*sc*(a.q) - dmin*mn*(sum a) regrouping of the same sum (both far below the 1e-4
// of max |want| that matmul.test.ts uses). The embedding copies dequantised weights, so it
// must equal the CPU decoder bit for bit. nvcc compiles the same variants in compile.test.ts.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RenderedKernel } from '../../backends/backend.ts';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { blockElements, type CompactType } from '../../program/quant.ts';
import { blockWeights, expectClose, matmulCase, moeExpertsCase, rng, seedArb as seed, type MoeInput } from '../gpu/harness.ts';
import { runKernelsOnCpu, type Launch } from './emulate.ts';
import { writeRunner } from './runnerHarness.ts';

const TOL = 1e-4;
// Each run compiles one program of five kernels with g++.
const RUNS = Number(process.env.INFER_CUDA_RUNS ?? 3);
const TIMEOUT = 180_000;
const FORMATS: readonly CompactType[] = ['f16', 'q4_K', 'q5_K', 'q6_K'];
const PROLOGUES = ['none', 'rmsnorm', 'silu_mul', 'gelu_mul'] as const;

/**
 * K along the weight's unit: f16 in 4s up to 320 (K % 8 == 4 takes the 8-byte path); K-quants
 * 1 .. `blocks` blocks (the 4-token GEMV stages 4 blocks per chunk, moe_experts 2: more cross a chunk).
 */
const kArb = (t: CompactType, blocks: number) => (t === 'f16' ? fc.integer({ min: 1, max: 80 }) : fc.integer({ min: 1, max: blocks })).map((m) => m * blockElements(t));

describe('CUDA kernels over compact weights', () => {
  it('render every compact type, and refuse K that is not a multiple of its unit', () => {
    for (const wtype of FORMATS) {
      const spec: KernelSpec = { kind: 'matmul', K: 512, N: 8, prologue: 'none', eps: 0, residual: false, wtype };
      expect(cudaBackend.render(kernelKey(spec), spec).map((v) => v.key.split('.').at(-1))).toEqual(['gemv', 'gemv4', 'tiled']);
      expect(() => cudaBackend.render('k', { ...spec, K: 258 })).toThrow(new RegExp(`${wtype} weights need K \\(dim 0\\) to be a multiple of ${blockElements(wtype)}`));
    }
  });

  // One program per case (g++ dominates the run time): the three matmul variants on prefixes
  // of one matmul case, the embedding and an expert kernel, each over buffers of its own.
  for (const wtype of FORMATS) {
    it(`${wtype}: matmul (GEMV, 4-token GEMV, tiled; every prologue, residual), embed (bit for bit), moe_experts (every input mode)`, () => fc.assert(fc.property(
      fc.record({ prologue: fc.constantFrom(...PROLOGUES), residual: fc.boolean(), K: kArb(wtype, 5), N: fc.integer({ min: 1, max: 70 }), T: fc.integer({ min: 8, max: 40 }) }),
      fc.record({ dim: kArb(wtype, 2), vocab: fc.integer({ min: 1, max: 12 }), T: fc.integer({ min: 1, max: 5 }) }),
      fc.record({
        E: fc.integer({ min: 2, max: 6 }), k0: fc.integer({ min: 1, max: 3 }), K: kArb(wtype, 3), N: fc.integer({ min: 1, max: 24 }), T: fc.integer({ min: 1, max: 4 }),
        input: fc.constantFrom<MoeInput>('shared', 'slot', 'silu_mul', 'swiglu'), combine: fc.boolean(), residual: fc.boolean(),
      }),
      seed,
      (mm, em, moe, s) => {
        const next = rng(s);
        const launches: Launch[] = [];
        const inputs: Record<string, Float32Array | Int32Array | Uint32Array> = {};
        const outputs: Record<string, number> = {};
        /** Adds a launch whose bindings read buffers `${prefix}${binding}` (each kernel over its own). */
        const add = (prefix: string, spec: KernelSpec, kernel: RenderedKernel, tokens: number, ins: Record<string, Float32Array | Int32Array | Uint32Array>, outs: Record<string, number>) => {
          launches.push({ kernel, spec, tokens, bind: Object.fromEntries(kernel.bindings.map((b) => [b.name, `${prefix}${b.name}`])) });
          for (const [n, d] of Object.entries(ins)) inputs[`${prefix}${n}`] = d;
          for (const [n, d] of Object.entries(outs)) outputs[`${prefix}${n}`] = d;
        };

        // Matmul: rows are independent, so the GEMV runs the first token, the 4-token GEMV the first T4.
        const { K, N, T } = mm, T4 = 2 + (s % 6);
        const w = blockWeights(wtype, next, K * N, 1 / Math.sqrt(K));
        const mc = matmulCase(next, w.values, K, N, T, mm.prologue, mm.residual);
        const mspec: KernelSpec = { kind: 'matmul', K, N, prologue: mm.prologue, eps: mc.eps, residual: mm.residual, wtype };
        const variant = (v: string) => cudaBackend.render(kernelKey(mspec), mspec).find((r) => r.key.endsWith(`.${v}`))!;
        add('g1_', mspec, variant('gemv'), 1, { ...mc.inputs, w: w.packed }, { out: N });
        add('g4_', mspec, variant('gemv4'), T4, { ...mc.inputs, w: w.packed }, { out: T4 * N });
        add('ti_', mspec, variant('tiled'), T, { ...mc.inputs, w: w.packed }, { out: T * N });

        // Embed: the last token is outside the vocabulary.
        const table = blockWeights(wtype, next, em.dim * em.vocab, 1);
        const tokens = Int32Array.from({ length: em.T }, (_, i) => (i === em.T - 1 && em.T > 1 ? em.vocab : Math.floor(next() * em.vocab)));
        const embedWant = new Float32Array(em.T * em.dim);
        tokens.forEach((id, t) => { if (id < em.vocab) embedWant.set(table.values.subarray(id * em.dim, (id + 1) * em.dim), t * em.dim); });
        const espec: KernelSpec = { kind: 'embed', dim: em.dim, vocab: em.vocab, wtype };
        add('em_', espec, cudaBackend.render(kernelKey(espec), espec)[0], em.T, { tokens, table: table.packed }, { out: em.T * em.dim });

        const ec = moeExpertsCase({ type: wtype, input: moe.input, E: moe.E, k: Math.min(moe.k0, moe.E), K: moe.K, N: moe.N, T: moe.T, combine: moe.combine, residual: moe.combine && moe.residual, next });
        add('mo_', ec.spec, cudaBackend.render(kernelKey(ec.spec), ec.spec)[0], moe.T, ec.inputs, { out: ec.outLength });

        const got = runKernelsOnCpu(launches, T, inputs, outputs);
        const what = `${wtype} ${mm.prologue}${mm.residual ? '+residual' : ''} K=${K} N=${N}`;
        expectClose(got.g1_out, mc.want.subarray(0, N), TOL, `gemv ${what} T=1`);
        expectClose(got.g4_out, mc.want.subarray(0, T4 * N), TOL, `gemv4 ${what} T=${T4}`);
        expectClose(got.ti_out, mc.want, TOL, `tiled ${what} T=${T}`);
        expect(Array.from(got.em_out), `embed ${wtype} dim=${em.dim} vocab=${em.vocab}`).toEqual(Array.from(embedWant));
        expectClose(got.mo_out, ec.want, TOL, ec.label);
      }), { numRuns: RUNS }), TIMEOUT);
  }
});

// Compact params come from a weight file's raw tensors (the TypeScript runner refuses a weight
// source without them, runtime/runner/buffers.ts); the generated runner's seeded random weights
// fill f32 params only, so it refuses a Program that keeps params compact, f16 included, by name.
it('the generated runner refuses seeded random weights for f16 and K-quant params, naming the buffer', () => {
  const text = readFileSync('examples/llama-20m.infer', 'utf8');
  const names = compileSpec(text, 'examples/llama-20m.infer').program!.params.map((p) => p.name);
  for (const t of ['f16', 'q4_K']) {
    const c = compileSpec(text, 'examples/llama-20m.infer', { weightTypes: new Map(names.map((n) => [n, t])) });
    expect(c.program!.buffers.some((b) => b.dtype === t)).toBe(true);
    expect(() => writeRunner(c.program!)).toThrow(new RegExp(`param buffer \\d+ is kept as ${t} \\(compact weights from a weight file\\); seeded random weights feed f32 params only`));
  }
});
