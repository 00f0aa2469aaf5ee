// The generated CUDA host runner on a Program of matmul steps (the kinds the CUDA backend
// renders today): built with build.sh --emu and run on the CPU emulation, its seeded
// weights are bit for bit those of runtime/weights/random.ts, and its greedy tokens for
// single and batched prompts are the argmax of the float64 forward of the same Program; the
// ASan build and reverse block / thread replay give the same tokens; the nvcc build compiles
// and links against libcudart (no GPU here). Never skipped: a missing g++ or nvcc fails.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { PROGRAM_FORMAT, WEBGPU_DEFAULT_LIMITS, type Program } from '../../program/program.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { build, runJson, runRunner, writeRunner } from './runnerHarness.ts';

const K = 64, V = 32, CTX = 48, SEED = 5, EPS = 1e-5;
const M1: KernelSpec = { kind: 'matmul', K, N: V, prologue: 'rmsnorm', eps: EPS, residual: false };
const M2: KernelSpec = { kind: 'matmul', K: V, N: V, prologue: 'none', eps: 0, residual: true };

/**
 * logits[t] = h[t] . w2 + h[t], h[t] = rmsnorm(in[t]) * norm . w1: `in` is a param with a row
 * per position of a forward, so the logits of a forward's last row depend on its length.
 */
const PROGRAM: Program = {
  format: PROGRAM_FORMAT,
  limits: WEBGPU_DEFAULT_LIMITS,
  model: {
    name: 'matmuls', vocab: V, dim: K, layers: 1, heads: 1, kvHeads: 1, headDim: 16, maxContext: CTX, eos: null,
    kv: { layout: { kind: 'paged', pageSize: 16 }, dtype: 'f32', window: null }, weights: { binding: 'random', seed: SEED }, constants: {},
  },
  params: [{ name: 'in', shape: [K, CTX] }, { name: 'norm', shape: [K] }, { name: 'w1', shape: [K, V] }, { name: 'w2', shape: [V, V] }],
  buffers: [
    { name: 'tokens', kind: 'input', dtype: 'i32', perToken: 1, elements: 0 },
    { name: 'positions', kind: 'input', dtype: 'i32', perToken: 1, elements: 0 },
    { name: 'param:in', kind: 'param', dtype: 'f32', perToken: 0, elements: K * CTX },
    { name: 'param:norm', kind: 'param', dtype: 'f32', perToken: 0, elements: K },
    { name: 'param:w1', kind: 'param', dtype: 'f32', perToken: 0, elements: K * V },
    { name: 'param:w2', kind: 'param', dtype: 'f32', perToken: 0, elements: V * V },
    { name: 'h', kind: 'activation', dtype: 'f32', perToken: V, elements: 0, storage: 'arena0' },
    { name: 'logits', kind: 'logits', dtype: 'f32', perToken: V, elements: 0 },
  ],
  arenas: [{ name: 'arena0', kind: 'activation', dtype: 'f32', perToken: V, elements: 0 }],
  kv: { kvHeads: 1, headDim: 16, pageSize: 16, dtype: 'f32', layout: 'paged', window: null, pagesPerSequence: 3, maxSequences: 4, pages: 12 },
  kernels: [{ key: kernelKey(M1), spec: M1 }, { key: kernelKey(M2), spec: M2 }],
  steps: [
    { kernel: kernelKey(M1), args: { x: 'param:in', norm: 'param:norm', w: 'param:w1', out: 'h' }, label: 'h' },
    { kernel: kernelKey(M2), args: { x: 'h', w: 'param:w2', res: 'h', out: 'logits' }, label: 'logits' },
  ],
  logits: 'logits',
  passes: [],
};

const weights = new RandomWeights(PROGRAM.params, SEED);

/** The float64 argmax of row `t`'s logits (ties: lowest id). */
function argmaxRow(t: number): number {
  const x = weights.get('in').subarray(t * K, (t + 1) * K), norm = weights.get('norm'), w1 = weights.get('w1'), w2 = weights.get('w2');
  let ss = 0;
  for (let k = 0; k < K; k++) ss += x[k] * x[k];
  const inv = 1 / Math.sqrt(ss / K + EPS);
  const h = Array.from({ length: V }, (_, n) => { let a = 0; for (let k = 0; k < K; k++) a += x[k] * inv * norm[k] * w1[n * K + k]; return a; });
  let best = 0, max = -Infinity;
  for (let n = 0; n < V; n++) {
    let a = h[n];
    for (let k = 0; k < V; k++) a += h[k] * w2[n * V + k];
    if (a > max) { max = a; best = n; }
  }
  return best;
}

/**
 * Greedy tokens of prompts that all start in the first step (rows laid out in batch order)
 * and then decode together (sequence i on row i).
 */
function expected(promptLengths: readonly number[], n: number): number[][] {
  let end = 0;
  return promptLengths.map((p, i) => { end += p; return [argmaxRow(end - 1), ...Array.from({ length: n - 1 }, () => argmaxRow(i))]; });
}

const fnv1a = (data: Float32Array): number => {
  const b = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 2166136261;
  for (const x of b) h = Math.imul(h ^ x, 16777619) >>> 0;
  return h;
};

let dir = '';
beforeAll(() => {
  dir = writeRunner(PROGRAM);
  build(dir, '--emu');
}, 300_000);
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('generated CUDA host runner (matmul Program, CPU emulation)', () => {
  it('seeded weights are bit for bit those of runtime/weights/random.ts', () => {
    const got = runJson(dir, ['--weights-hash']);
    expect(got.param_hashes).toEqual(PROGRAM.params.map((p) => fnv1a(weights.get(p.name))));
  });

  it('greedy: one prompt and a batch of three give the float64 forward\'s tokens', () => {
    const one = runJson(dir, ['--tokens', '1,2,3,4,5', '--max-tokens', '6']);
    expect(one.tokens).toEqual(expected([5], 6)[0]);
    expect(one.stop_reason).toBe('max_tokens');
    const batch = runJson(dir, ['--tokens', '1', '--tokens', '3,4,5,6,7,8,9', '--tokens', '2,2,2', '--max-tokens', '4']);
    const seqs = batch.sequences as { tokens: number[]; stop_reason: string }[];
    expect(seqs.map((s) => s.tokens)).toEqual(expected([1, 7, 3], 4));
    expect((batch.stats as { max_batch: number }).max_batch).toBe(3);
  });

  it('stops at the context, and rejects bad flags with a message', () => {
    const full = runJson(dir, ['--tokens', Array.from({ length: CTX - 2 }, () => '1').join(','), '--max-tokens', '10'], {}, 3);
    expect(full.tokens).toHaveLength(3);
    expect(full.stop_reason).toBe('max_context');
    const bad = runRunner(dir, ['--tokens', `1,${V}`]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--tokens needs an integer in 0\.\.31, got '32'/);
    expect(runRunner(dir, ['--frobnicate']).stderr).toMatch(/unknown flag '--frobnicate'/);
  });

  it('the ASan build and reverse block and thread replay give the same tokens', () => {
    build(dir, '--asan');
    const args = ['--tokens', '1,2,3', '--tokens', '4', '--max-tokens', '3'];
    const want = runJson(dir, args).sequences;
    expect(runJson(dir, args, { asan: true }).sequences).toEqual(want);
    expect(runJson(dir, args, { reverseBlocks: true, reverseThreads: true }).sequences).toEqual(want);
  }, 300_000);

  it('the nvcc build compiles and links against libcudart', () => {
    build(dir, '--cuda');
  }, 300_000);
});
