// The WebGPU engine against the CPU engine (the float64 interpreter) on the
// fixture llama: random shapes (MHA, GQA, MQA; head_dim and widths with and
// without vec4 paths), seeds, prompt lengths from 1 to past the tiled-matmul
// threshold, fused and unfused programs.
//
// Relative error of a logits row: max_i |gpu_i - cpu_i| / max_i |cpu_i|, per row;
// it must stay under 1e-4. Greedy tokens must be identical for 16+ decode steps.
// No adapter is a failure (beforeAll throws), never a skip.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Graph } from '../../compiler/ir/index.ts';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import type { Program } from '../../program/program.ts';
import { TILED_MIN_TOKENS } from '../../backends/wgsl/kernels.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { createGpuDevice, targetOf } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { CPU_TARGET, GPU_TARGET, type Target } from '../../backends/backend.ts';

const TOL = 1e-4;
let device: GPUDevice;

beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
afterAll(() => device?.destroy());

/** Worst per-row relative error over the rows of two [rows, V] arrays (b is the reference). */
function rowRelError(a: Float32Array, b: Float32Array, V: number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let r = 0; r < b.length / V; r++) {
    let num = 0, den = 0;
    for (let i = r * V; i < (r + 1) * V; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
    worst = Math.max(worst, num / den);
  }
  return worst;
}

function build(shape: LlamaShape, fuse: boolean): { graph: Graph; program: Program } {
  const raw = denseLlama(shape);
  const graph = fuse ? runPipeline(raw).graph : raw;
  return { graph, program: schedule(graph) };
}

async function pair(shape: LlamaShape, seed: number, fuse: boolean, target?: Target) {
  const { graph, program } = build(shape, fuse);
  const weights = new RandomWeights(graph.params, seed);
  const gpu = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights, target });
  return { gpu, cpu: new CpuEngine(graph, weights, program), program };
}

const shapeArb = fc.record({
  kvHeads: fc.integer({ min: 1, max: 3 }), group: fc.constantFrom(1, 2, 4), headDim: fc.constantFrom(4, 6, 8, 16),
  // Widths with and without the vec4 path (multiples of 4 or not); few values, so kernels repeat.
  dim: fc.constantFrom(20, 32, 42), layers: fc.integer({ min: 1, max: 2 }), ffn: fc.constantFrom(24, 45),
  vocab: fc.constantFrom(37, 96),
}).map((r): LlamaShape => ({ ...r, heads: r.kvHeads * r.group, maxContext: 64 }));

// Fixed shapes for the tiled (prefill) path and the token tests. They share dim, q width,
// ffn and vocab so most matmul kernels are common: lavapipe compiles each pipeline at
// its first dispatch, and a tiled matmul takes seconds to compile.
const CASES: [string, LlamaShape][] = [
  ['MHA', { vocab: 128, dim: 64, layers: 2, heads: 4, kvHeads: 4, headDim: 16, ffn: 96, maxContext: 96 }],
  ['GQA', { vocab: 128, dim: 64, layers: 2, heads: 8, kvHeads: 2, headDim: 8, ffn: 96, maxContext: 96 }],
  ['MQA', { vocab: 128, dim: 64, layers: 2, heads: 4, kvHeads: 1, headDim: 16, ffn: 96, maxContext: 96 }],
];

/** Prefill of P tokens, then 3 decode steps: every row within TOL of the CPU engine. */
async function compareLogits(shape: LlamaShape, seed: number, P: number, fuse: boolean, target?: Target): Promise<void> {
  const { gpu, cpu } = await pair(shape, seed, fuse, target);
  try {
    const V = shape.vocab;
    const prompt = Int32Array.from({ length: P }, (_, i) => (i * 31 + seed) % V);
    const pos = Int32Array.from({ length: P }, (_, i) => i);
    const want = await cpu.forward(prompt, pos);
    expect(rowRelError(await gpu.forward(prompt, pos), want, V)).toBeLessThan(TOL);
    for (let p = P; p < P + 3; p++) {
      const tok = Int32Array.of((p * 7 + 3) % V), at = Int32Array.of(p);
      const c = await cpu.forward(tok, at, { rows: 'last' });
      expect(rowRelError(await gpu.forward(tok, at, { rows: 'last' }), c, V)).toBeLessThan(TOL);
    }
  } finally { gpu.dispose(); }
}

describe('WebGPU engine vs CPU engine', () => {
  // Kernels tuned for either target (lavapipe would pick CPU_TARGET by itself).
  it('lavapipe, a software adapter, gets kernels tuned for the CPU', () => {
    expect(targetOf(device).kind).toEqual((process.env.INFER_TARGET === 'gpu' ? GPU_TARGET : CPU_TARGET).kind);
  });

  it('logits agree within 1e-4 relative error per row: random shapes, short prompts (GEMV path), GPU and CPU tuning', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: TILED_MIN_TOKENS - 1 }), fc.boolean(), fc.constantFrom(GPU_TARGET, CPU_TARGET),
      (shape, seed, P, fuse, target) => compareLogits(shape, seed, P, fuse, target)), { numRuns: 10, endOnFailure: true });
  }, 240_000);

  it(`logits agree within 1e-4 relative error per row: MHA/GQA/MQA, prompts of ${TILED_MIN_TOKENS}..48 (tiled path)`, async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...CASES.map((c) => c[1])), fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: TILED_MIN_TOKENS, max: 48 }),
      (shape, seed, P) => compareLogits(shape, seed, P, true)), { numRuns: 6, endOnFailure: true });
  }, 240_000);

  for (const [name, shape] of CASES) {
    it(`${name}: identical greedy tokens for 20 decode steps, prompts 1, 5 and ${TILED_MIN_TOKENS * 4 + 3}`, async () => {
      for (const [seed, P] of [[3, 1], [17, 5], [101, TILED_MIN_TOKENS * 4 + 3]]) {
        const { gpu, cpu, program } = await pair(shape, seed, true);
        try {
          const prompt = Array.from({ length: P }, (_, i) => (i * 13 + seed) % shape.vocab);
          const opts = { maxTokens: 21, ignoreEos: true, topLogprobs: 5 };
          const c = await generate(cpu, prompt, opts);
          const g = await generate(gpu, prompt, opts);
          expect(g.tokens).toEqual(c.tokens);
          g.topLogprobs.forEach((row, i) => row.forEach((t, j) => {
            expect(t.id).toBe(c.topLogprobs[i][j].id);
            expect(Math.abs(t.logprob - c.topLogprobs[i][j].logprob)).toBeLessThan(1e-3);
          }));
          expect(g.stats.dispatches_per_token).toBe(program.steps.length);
          expect(g.stats.generated_tokens).toBe(21);
        } finally { gpu.dispose(); }
      }
    }, 180_000);
  }

  it("reset starts a new sequence, rows: 'last' is the last row, stats count dispatches", async () => {
    const shape = CASES[1][1];
    const { gpu, program } = await pair(shape, 9, true);
    try {
      const t = Int32Array.of(5, 6, 7, 8, 9, 10, 11, 12, 13), p = Int32Array.from(t.keys());
      const all = await gpu.forward(t, p);
      await gpu.forward(Int32Array.of(1), Int32Array.of(9));
      gpu.reset();
      const last = await gpu.forward(t, p, { rows: 'last' });
      expect(Array.from(last)).toEqual(Array.from(all.subarray(8 * shape.vocab)));
      const s = gpu.stats();
      expect(s).toMatchObject({ backend: 'webgpu', forwards: 3, tokens: 19, dispatchesPerForward: program.steps.length, dispatches: 3 * program.steps.length });
      expect(s.bytesAllocated).toBeGreaterThan(0);
      await expect(gpu.forward(Int32Array.of(shape.vocab), Int32Array.of(0))).rejects.toThrow(/outside the vocabulary/);
      await expect(gpu.forward(Int32Array.of(1), Int32Array.of(shape.maxContext!))).rejects.toThrow(/leaves a gap/);
      const M = shape.maxContext!;
      await gpu.forward(Int32Array.from({ length: M }, (_, i) => i % shape.vocab), Int32Array.from({ length: M }, (_, i) => i), { rows: 'last' });
      await expect(gpu.forward(Int32Array.of(1), Int32Array.of(M))).rejects.toThrow(/over the context of/);
    } finally { gpu.dispose(); }
  }, 60_000);

  it('refuses a buffer over the storage binding limit, or over the memory available, with a clear message, before allocating', async () => {
    const limit = device.limits.maxStorageBufferBindingSize;
    const vocab = Math.ceil((limit / 4 / 16) * 1.25); // token_embd [16, vocab]: 160 MiB
    const shape = { vocab, dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, ffn: 16, maxContext: 8 };
    const raw = runPipeline(denseLlama(shape)).graph;
    // Scheduled for larger buffers than this device binds: the 160 MiB table is one buffer.
    const big = 4 * limit;
    const program = schedule(raw, [], { limits: { maxBindingBytes: big, maxBufferBytes: big } });
    // Zeros for the small tensors; the oversized one must be refused before it is read.
    const sizes = new Map(raw.params.map((q) => [q.name, q.shape.reduce((a, b) => a * b, 1)]));
    const weights = { get: (name: string) => { if (name === 'token_embd' || name === 'output') throw new Error(`read ${name}`); return new Float32Array(sizes.get(name)!); } };
    await expect(WebGpuEngine.create({ device, program, backend: wgslBackend, weights }))
      .rejects.toThrow(/^buffer param:(token_embd|output) needs 160\.0 MiB \(the program splits params over 512\.0 MiB; compile it for this device's limits\), over this device's (storage binding|buffer size) limit of 128\.0 MiB$/);
    // Scheduled for the default limits it is split, so it fits every buffer; the whole does not fit 100 MiB of memory.
    const split = schedule(raw);
    await expect(WebGpuEngine.create({ device, program: split, backend: wgslBackend, weights, deviceMemoryBytes: 100 * 2 ** 20 }))
      .rejects.toThrow(/^the model needs \d+\.\d MiB of device memory \(weights \d+\.\d MiB, KV cache .*; largest buffer param:(token_embd|output)@0, 80\.0 MiB\), over the 100\.0 MiB available on .*; use a smaller KV pool/);
    const small = build({ vocab: 4096, dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, ffn: 16, maxContext: 16384 }, true);
    const w = new RandomWeights(small.graph.params, 1);
    await expect(WebGpuEngine.create({ device, program: small.program, backend: wgslBackend, weights: w, maxTokensPerForward: 16384 }))
      .rejects.toThrow(/buffer logits needs .*16384 tokens x 4096 values.*use fewer tokens per forward/);
  }, 60_000);
});
