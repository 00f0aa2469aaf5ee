// `infer plan` checked against what the runtime does, on random dense specs (fast-check):
// the device bytes and KV pool it predicts are exactly what the runner allocates for that
// context, batch and tokens per forward (over a null device: the runner's host side, no
// GPU), the pool is enough for the batch to reach that context, and the bytes per decode
// step (and per prefill forward) are within 5% of the bytes the submitted dispatches touch,
// counted from their bindings and the uploaded block tables (runtime/runner/traffic.ts),
// not from compiler/cost.ts; the same for the families' fused and unfused kernels. Also the
// speculative formula and the examples' MoE plans.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { FUSION_KEYS } from '../../compiler/pipeline.ts';
import { buildPlan } from '../../compiler/plan/plan.ts';
import { batchStepCost, expectedTokensPerPass } from '../../compiler/plan/step.ts';
import type { Program } from '../../program/program.ts';
import { ProgramRunner } from '../../runtime/runner/programRunner.ts';
import { countTraffic, TrafficDevice } from '../../runtime/runner/traffic.ts';
import { nullDevice } from '../fixtures/nullDevice.ts';
import { specShapeArb, specText, specWeightTypes, zeroWeights } from '../fixtures/randomSpec.ts';

function compile(text: string, noFuse: string[] = [], weightTypes?: ReadonlyMap<string, string>): Program {
  const c = compileSpec(text, 'random.infer', { noFuse: new Set(noFuse), weightTypes });
  if (!c.program) throw new Error(c.diagnostics.map((d) => d.message).join('\n'));
  return c.program;
}

const sum = (xs: { bytesRead: number }[]) => xs.reduce((a, x) => a + x.bytesRead, 0);

describe('infer plan against the runner', () => {
  it('device bytes and KV pool equal the allocation; bytes per step within 5% of the dispatches', async () => {
    await fc.assert(fc.asyncProperty(
      specShapeArb, fc.subarray([...FUSION_KEYS]), fc.integer({ min: 1, max: 4 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }),
      async (shape, noFuse, batch, ctxFrac, tpfFrac) => {
        const text = specText(shape);
        const names = compile(text).params.map((q) => q.name);
        const p = compile(text, noFuse, specWeightTypes(shape, names));
        const context = 2 + Math.floor(ctxFrac * (shape.maxContext - 2));
        const tokensPerForward = batch + Math.floor(tpfFrac * (shape.maxContext - batch));
        const plan = buildPlan(p, { context, batch, tokensPerForward });
        const device = new TrafficDevice(nullDevice());
        const engine = await ProgramRunner.open({ device, program: p, backend: wgslBackend, weights: zeroWeights(p), maxTokensPerForward: tokensPerForward, maxSequences: batch, kvPages: plan.kv_pool.pages });
        try {
          expect(device.bytesAllocated).toBe(plan.device_bytes);
          expect(engine.stats().bytesAllocated).toBe(plan.device_bytes);
          const kv = [...device.allocated].filter(([b]) => b.label.startsWith('kv.')).reduce((a, [, n]) => a + n, 0);
          expect(kv).toBe(plan.device_breakdown.kv);
          expect(engine.kvStats().bytes_pool).toBe(plan.kv_pool.bytes);
          expect(engine.stats().activationBytes).toBe(plan.device_breakdown.activation);
          // The first prefill forward of one sequence: T tokens at context T.
          const seqs = Array.from({ length: batch }, () => engine.kv.join());
          const first = Math.min(context - 1, tokensPerForward);
          await engine.forwardBatch([{ seq: seqs[0], tokens: new Array(first).fill(1) }]);
          const pre = batchStepCost(p, 1, first, first).bytesRead;
          expect(Math.abs(sum(countTraffic(p, device)) - pre) / pre).toBeLessThan(0.05);
          // Every sequence to context - 1 tokens, in forwards of at most tokensPerForward tokens...
          for (;;) {
            let room = tokensPerForward;
            const items = seqs.flatMap((seq) => {
              const n = Math.min(room, context - 1 - engine.kv.length(seq));
              room -= Math.max(0, n);
              return n > 0 ? [{ seq, tokens: new Array(n).fill(1) }] : [];
            });
            if (!items.length) break;
            await engine.forwardBatch(items);
          }
          // ...then one decode step: each sequence's token at position context - 1.
          await engine.forwardBatch(seqs.map((seq) => ({ seq, tokens: [1] })));
          const counted = sum(countTraffic(p, device));
          expect(Math.abs(counted - plan.bytes_per_step) / plan.bytes_per_step).toBeLessThan(0.05);
        } finally {
          engine.dispose();
        }
      }), { numRuns: 40 });
  }, 60_000);

  // The families' fused kernels (bias / softcap epilogues, per-head norms in rope and the KV
  // append) and their unfused forms: one decode step of a batch of 2 at context 40.
  for (const [name, noFuse] of [['tiny-qwen2', 'bias'], ['tiny-gemma2', 'softcap'], ['tiny-qwen3', 'qk_norm']] as const) {
    it(`${name}: bytes per decode step within 5% of the dispatches, fused and with --no-fuse ${noFuse}`, async () => {
      for (const off of [[], [noFuse]]) {
        const p = compile(readFileSync(`examples/${name}.infer`, 'utf8'), off);
        const plan = buildPlan(p, { context: 40, batch: 2, tokensPerForward: 39 });
        const device = new TrafficDevice(nullDevice());
        const engine = await ProgramRunner.open({ device, program: p, backend: wgslBackend, weights: zeroWeights(p), maxTokensPerForward: 39, maxSequences: 2, kvPages: plan.kv_pool.pages });
        try {
          const seqs = [engine.kv.join(), engine.kv.join()];
          for (const seq of seqs) await engine.forwardBatch([{ seq, tokens: new Array(39).fill(1) }]);
          await engine.forwardBatch(seqs.map((seq) => ({ seq, tokens: [1] })));
          const counted = sum(countTraffic(p, device));
          expect(Math.abs(counted - plan.bytes_per_step) / plan.bytes_per_step, `${name} --no-fuse ${off.join(',')}`).toBeLessThan(0.05);
        } finally {
          engine.dispose();
        }
      }
    });
  }

  it('speculative: (1 - a^(K+1)) / (1 - a) tokens per pass, K + 1 at a = 1, 1 at a = 0', () => {
    expect(expectedTokensPerPass(0, 4)).toBe(1);
    expect(expectedTokensPerPass(1, 4)).toBe(5);
    expect(expectedTokensPerPass(0.5, 3)).toBeCloseTo(1 + 0.5 + 0.25 + 0.125, 12);
    const p = compile(readFileSync('examples/llama-20m.infer', 'utf8'));
    // A free proposer that is always right makes each pass worth K + 1 tokens for one verify pass.
    const s = buildPlan(p, { context: 64, speculative: { lookahead: 3, acceptance: 1, draftName: 'oracle', draft: null } }).speculative!;
    expect(s.expectedTokensPerPass).toBe(4);
    expect(s.draftStepSeconds).toBe(0);
    expect(s.tokensPerS).toBeCloseTo(4 / s.verifySeconds, 6);
  });

  it('MoE: active weights per token count k of the experts; ep needs experts, tp does not', () => {
    const p = compile(readFileSync('examples/tiny-mixtral.infer', 'utf8'));
    const plan = buildPlan(p, { context: 32 });
    const m = p.model, c = m.constants;
    const expertBytes = 3 * c.dim * c.ffn * 4 * m.layers;
    const embedRows = (m.vocab - 1) * m.dim * 4;
    expect(plan.active_weights_bytes_per_token).toBe(plan.weights_bytes - embedRows - expertBytes * (c.experts - c.top_k));
    const link = { name: 'test link', id: 'x', gbsPerDirection: 100 };
    const ep = buildPlan(p, { context: 32, parallel: { devices: 4, mode: 'ep', link } }).parallel!;
    expect(ep.commBytesPerToken).toBe(m.layers * 2 * c.top_k * c.dim * 4 * (3 / 4));
    const dense = compile(readFileSync('examples/llama-20m.infer', 'utf8'));
    expect(() => buildPlan(dense, { parallel: { devices: 2, mode: 'ep', link } })).toThrow(/mixture-of-experts/);
    const tp = buildPlan(dense, { parallel: { devices: 2, mode: 'tp', link } }).parallel!;
    // Two all-reduces per layer (attention output, FFN down) plus the logits' all-gather.
    expect(tp.collectivesPerStep).toBe(2 * dense.model.layers);
    expect(tp.commBytesPerToken).toBe(2 * dense.model.layers * 1 * dense.model.dim * 4 + 0.5 * dense.model.vocab * 4);
  });
});
