// Batched, paged decoding on WebGPU: sequences of different lengths decoded together
// (one dispatch per kernel for the whole batch) give each sequence the tokens it gets
// alone, and random interleavings of joins, shared prefixes, appends, rollbacks,
// finishes and pool exhaustion keep every live sequence decoding what a fresh CPU
// engine computes. Every KV format and page size is drawn.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { KvDType } from '../../program/model.ts';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { greedy } from '../../runtime/sampling.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { kvOpArb, runKvOps } from '../fixtures/kvOps.ts';

const RUNS = Number(process.env.INFER_GPU_RUNS ?? 12);
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
afterAll(() => device?.destroy());

const TOL: Record<KvDType, number> = { f32: 1e-4, f16: 2e-3, int8: 5e-3, int4: 5e-3 };

function rowClose(got: Float32Array, want: Float32Array, tol: number, what: string) {
  expect(got.length).toBe(want.length);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) { num = Math.max(num, Math.abs(got[i] - want[i])); den = Math.max(den, Math.abs(want[i])); }
  if (!(num <= tol * den)) throw new Error(`${what}: max |gpu - cpu| ${num} > ${tol} * ${den}`);
}

const shapeArb = fc.record({
  kvHeads: fc.integer({ min: 1, max: 2 }), group: fc.constantFrom(1, 2), headDim: fc.constantFrom(4, 8),
  pageSize: fc.constantFrom(1, 2, 4, 8), kvDtype: fc.constantFrom('f32', 'f16', 'int8', 'int4') as fc.Arbitrary<KvDType>,
  window: fc.option(fc.integer({ min: 2, max: 12 }), { freq: 3 }), seed: fc.integer({ min: 1, max: 999 }), splits: fc.constantFrom(1, 3),
}).map((r) => ({ splits: r.splits, shape: { vocab: 23, dim: 16, layers: 2, heads: r.kvHeads * r.group, kvHeads: r.kvHeads, headDim: r.headDim, ffn: 20, maxContext: 40, window: r.window, pageSize: r.pageSize, kvDtype: r.kvDtype } as LlamaShape, seed: r.seed }));

function engines(shape: LlamaShape, seed: number, pool: { maxSequences: number; kvPages?: number }, attentionSplits = 1) {
  const graph = runPipeline(denseLlama(shape)).graph;
  const program = schedule(graph, [], { attentionSplits });
  const weights = new RandomWeights(graph.params, seed);
  return { graph, program, weights, gpu: () => WebGpuEngine.create({ device, program, backend: wgslBackend, weights, ...pool }), cpu: (o = pool) => new CpuEngine(graph, weights, program, o) };
}

it('a batch of sequences of different lengths decodes, step by step, what each decodes alone', () =>
  fc.assert(fc.asyncProperty(shapeArb, fc.array(fc.array(fc.integer({ min: 0, max: 22 }), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }), async ({ shape, seed, splits }, prompts) => {
    const e = engines(shape, seed, { maxSequences: 4 }, splits);
    const gpu = await e.gpu();
    const cpu = e.cpu();
    try {
      const seqs = prompts.map(() => gpu.kv.join());
      const cseqs = prompts.map(() => cpu.kv.join());
      // Prefill: every prompt in one forward (multi-token causal queries per sequence).
      let rows = await gpu.forwardBatch(prompts.map((p, i) => ({ seq: seqs[i], tokens: p })), { rows: 'last' });
      let crows = await cpu.forwardBatch(prompts.map((p, i) => ({ seq: cseqs[i], tokens: p })), { rows: 'last' });
      const out: number[][] = prompts.map(() => []);
      for (let step = 0; step < 6; step++) {
        rows.forEach((r, i) => rowClose(r, crows[i], TOL[shape.kvDtype!], `step ${step} sequence ${i}`));
        const next = rows.map((r) => greedy(r));
        next.forEach((t, i) => out[i].push(t));
        // The whole batch is one forward: one dispatch per Program step, whatever its size.
        const before = gpu.stats().dispatches;
        rows = await gpu.forwardBatch(seqs.map((seq, i) => ({ seq, tokens: [next[i]] })), { rows: 'last' });
        expect(gpu.stats().dispatches - before).toBe(e.program.steps.length);
        crows = await cpu.forwardBatch(cseqs.map((seq, i) => ({ seq, tokens: [next[i]] })), { rows: 'last' });
      }
      // Alone: each prompt through the single-sequence path of a fresh CPU engine.
      const alone = e.cpu({ maxSequences: 1 });
      for (let i = 0; i < prompts.length; i++) {
        alone.reset();
        let r = await alone.forward(Int32Array.from(prompts[i]), Int32Array.from(prompts[i], (_, j) => j), { rows: 'last' });
        for (let s = 0; s < 6; s++) {
          const t = greedy(r);
          if (t !== out[i][s]) {
            // Near-ties may flip between float paths; a real error moves far more than this.
            const sorted = Array.from(r).sort((a, b) => b - a);
            expect(sorted[0] - sorted[1], `sequence ${i} step ${s}: batched ${out[i][s]} vs alone ${t}`).toBeLessThan(1e-3 * Math.abs(sorted[0]) + (shape.kvDtype === 'f32' ? 0 : 5e-2));
            break;
          }
          r = await alone.forward(Int32Array.of(t), Int32Array.of(prompts[i].length + s), { rows: 'last' });
        }
      }
      // stats.kv counts exactly the live sequences' unevicted pages (nothing is shared here), and
      // finishing every sequence returns every page.
      gpu.kv.check();
      const live = new Set(seqs.flatMap((q) => gpu.kv.pages(q)).filter((p) => p >= 0));
      expect(gpu.kvStats().pages_used).toBe(live.size);
      for (const q of seqs) gpu.kv.free(q);
      expect(gpu.kvStats().pages_used).toBe(0);
    } finally { gpu.dispose(); }
  }), { numRuns: RUNS }), 300_000);

const seen = { checks: 0, shared: 0, exhausted: 0 };
it('random KV operations keep every live sequence decoding what a fresh engine computes', () =>
  fc.assert(fc.asyncProperty(shapeArb, fc.integer({ min: 4, max: 14 }), fc.array(kvOpArb(23), { minLength: 5, maxLength: 14 }), async ({ shape, seed, splits }, pages, ops) => {
    const small = { ...shape, maxContext: 24 };
    const e = engines(small, seed, { maxSequences: 4, kvPages: Math.max(pages, Math.ceil(small.maxContext! / shape.pageSize!)) }, splits);
    const gpu = await e.gpu();
    const ref = e.cpu({ maxSequences: 1 });
    try {
      const r = await runKvOps(gpu, ops, async (tokens) => {
        ref.reset();
        return ref.forward(Int32Array.from(tokens), Int32Array.from(tokens, (_, i) => i), { rows: 'last' });
      }, (got, want, what) => rowClose(got, want, TOL[shape.kvDtype!], what));
      seen.checks += r.checks; seen.shared += r.shared; seen.exhausted += r.exhausted;
    } finally { gpu.dispose(); }
  }), { numRuns: Math.max(3, Math.round(RUNS / 2)) }).then(() => {
    // The runs must have compared decodes (sharing and exhaustion counts are asserted by the
    // CPU twin of this test, which runs enough cases to make them certain).
    expect(seen.checks).toBeGreaterThan(0);
  }), 300_000);
