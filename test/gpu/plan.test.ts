// `infer plan` against the WebGPU engine on this adapter: for each example spec (contiguous
// f32, paged int8, windowed f16, MoE) and a few random dense specs, the device bytes the plan
// predicts are what the engine's GPU buffers take, its KV pool is the engine's, and that pool
// lets every sequence of the batch reach the planned context with the kernels really
// running. test/compiler/plan.test.ts checks more shapes, and the bytes per step against the
// dispatches' bindings, over a null device.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { buildPlan } from '../../compiler/plan/plan.ts';
import type { Program } from '../../program/program.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { specShapeArb, specText, specWeightTypes, zeroWeights } from '../fixtures/randomSpec.ts';

let gpu: GPUDevice;
beforeAll(async () => { gpu = await createGpuDevice(); }, 120_000);
afterAll(() => gpu?.destroy());

const CHUNK = 16;

async function check(p: Program, context: number, batch: number): Promise<void> {
  const plan = buildPlan(p, { context, batch, tokensPerForward: CHUNK });
  const engine = await WebGpuEngine.create({ device: gpu, program: p, backend: wgslBackend, weights: zeroWeights(p), maxTokensPerForward: CHUNK, maxSequences: batch, kvPages: plan.kv_pool.pages });
  try {
    expect(engine.stats().bytesAllocated).toBe(plan.device_bytes);
    expect(engine.stats().activationBytes).toBe(plan.device_breakdown.activation);
    expect(engine.kvStats().bytes_pool).toBe(plan.kv_pool.bytes);
    const seqs = Array.from({ length: batch }, () => engine.kv.join());
    for (const seq of seqs) {
      while (engine.kv.length(seq) < context - 1) await engine.forwardBatch([{ seq, tokens: new Array(Math.min(CHUNK, context - 1 - engine.kv.length(seq))).fill(1) }]);
    }
    const rows = await engine.forwardBatch(seqs.map((seq) => ({ seq, tokens: [1] })), { rows: 'last' });
    expect(rows.every((r) => r.length === p.model.vocab && r.every(Number.isFinite))).toBe(true);
  } finally {
    engine.dispose();
  }
}

describe('infer plan on WebGPU', () => {
  it.each(['tiny-llama', 'tiny-paged-int8', 'tiny-window', 'tiny-mixtral'])('%s: allocation and KV pool as planned, batch of 2 reaches the context', async (name) => {
    const file = `examples/${name}.infer`;
    await check(compileSpec(readFileSync(file, 'utf8'), file).program!, 40, 2);
  });

  it('random dense specs (f32, q8_0, q4_0 weights; every KV format)', async () => {
    await fc.assert(fc.asyncProperty(specShapeArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 40 }), async (shape, batch, ctx) => {
      const text = specText(shape);
      const names = compileSpec(text, 'r.infer').program!.params.map((q) => q.name);
      await check(compileSpec(text, 'r.infer', { weightTypes: specWeightTypes(shape, names) }).program!, Math.min(ctx, shape.maxContext), batch);
    }), { numRuns: 2, endOnFailure: true });
  }, 180_000);
});
