// Continuous batching on the CPU engine: every sequence of a batched run (prompts
// sharing prefixes, joining between steps, a pool too small to hold them all at
// once) generates exactly what it generates alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { BatchGenerator, generateBatch } from '../../runtime/batchGenerate.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';

function setup(seed: number, pageSize: number, pages: number, maxSequences: number) {
  const g = runPipeline(denseLlama({ vocab: 13, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 6, maxContext: 20, pageSize })).graph;
  const program = schedule(g);
  const w = new RandomWeights(g.params, seed);
  return { batched: new CpuEngine(g, w, program, { maxSequences, kvPages: pages }), alone: new CpuEngine(g, w, program, { maxSequences: 1 }) };
}

describe('generateBatch', () => {
  it('each sequence generates what it generates alone (greedy and seeded sampling)', async () => {
    const seen = { reused: 0, steps: 0 };
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 500 }), fc.constantFrom(1, 2, 4), fc.integer({ min: 1, max: 4 }),
      // Prompts often share a base (a system prompt), then differ.
      fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 8 }),
      fc.array(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 0, max: 8 }), fc.boolean(),
      async (seed, P, maxSequences, base, suffixes, maxTokens, sample) => {
        const prompts = suffixes.map((s, i) => (i % 3 === 2 ? s : [...base, ...s]));
        // Enough pages for one full-length sequence (so every prompt eventually runs), often fewer than the batch wants.
        const { batched, alone } = setup(seed, P, Math.ceil(20 / P) + (seed % 4), maxSequences);
        const sampling = sample ? { temperature: 0.8, seed: 5 } : undefined;
        const r = await generateBatch(batched, prompts, { maxTokens, sampling, ignoreEos: true });
        for (let i = 0; i < prompts.length; i++) {
          const one = await generate(alone, prompts[i], { maxTokens, sampling: sampling && { ...sampling, seed: 5 + i }, ignoreEos: true });
          const got = r.sequences[i];
          if (got.stop_reason === 'kv_exhausted') { expect(one.tokens.slice(0, got.tokens.length)).toEqual(got.tokens); continue; }
          expect(got.tokens, `prompt ${i}`).toEqual(one.tokens);
          expect(got.stop_reason).toBe(one.stats.stop_reason);
        }
        batched.kv.check();
        expect(batched.kv.pool.used).toBe(0);
        seen.reused += r.stats.prefix_reused_tokens;
        seen.steps += r.stats.steps;
      }), { numRuns: 60 });
    expect(seen.reused).toBeGreaterThan(10);
  });

  it('accepts new sequences between steps (continuous batching)', async () => {
    const { batched, alone } = setup(3, 2, 40, 4);
    const g = new BatchGenerator(batched, { maxTokens: 6, ignoreEos: true });
    g.add([1, 2, 3]);
    await g.step();
    await g.step();
    g.add([1, 2, 0, 3]); // joins mid-run, sharing the prefix [1, 2]
    while (!g.done) await g.step();
    const res = g.results();
    expect(res[1].prefix_reused).toBe(2);
    for (const [i, p] of [[1, 2, 3], [1, 2, 0, 3]].entries()) {
      expect(res[i].tokens).toEqual((await generate(alone, p, { maxTokens: 6, ignoreEos: true })).tokens);
    }
    expect(g.counters().maxBatch).toBe(2);
  });
});
