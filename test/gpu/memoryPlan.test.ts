// Activation memory planning on WebGPU: a planned Program (activations sharing arenas,
// compiler/planMemory.ts) gives bit-identical logits to the same Program with a buffer per
// activation (same kernels, same order: any clobbered value would show), and both agree
// with the CPU engine (the float64 interpreter). Fused, unfused, flash-decoding splits,
// a batch of sequences of different lengths, and MoE (whose routing is read back after
// the forward: the per-expert counts must match too). Planned uses fewer device bytes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import type { Graph } from '../../compiler/ir/index.ts';
import { FUSION_KEYS, runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import type { Program } from '../../program/program.ts';
import type { WeightSource } from '../../program/weights.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { compileMoe, moeWeights } from '../fixtures/moeFixtures.ts';

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
afterAll(() => device?.destroy());

const TOL = 1e-4;
function relErr(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) { num = Math.max(num, Math.abs(got[i] - want[i])); den = Math.max(den, Math.abs(want[i])); }
  return num / den;
}

/** The same forwards on planned and unplanned WebGPU engines and the CPU engine: a batch prefill of `prompts`, then 3 batched decode steps. */
async function compare(graph: Graph, weights: WeightSource, plan: (planMemory: boolean) => Program, prompts: number[][], moe = false): Promise<void> {
  const planned = plan(true), unplanned = plan(false);
  expect(planned.arenas.length).toBeGreaterThan(0);
  const maxSequences = Math.max(4, prompts.length);
  const open = (program: Program) => WebGpuEngine.create({ device, program, backend: wgslBackend, weights, maxSequences, moeStats: moe });
  const a = await open(planned), b = await open(unplanned);
  const cpu = new CpuEngine(graph, weights, planned, { maxSequences });
  try {
    expect(a.stats().bytesAllocated).toBeLessThan(b.stats().bytesAllocated);
    expect(a.stats().activationBytes).toBeLessThan(b.stats().activationBytes!);
    const seqs = [a, b, cpu].map((e) => prompts.map(() => e.kv.join()));
    let items = prompts;
    for (let step = 0; step < 4; step++) {
      const [ra, rb, rc] = await Promise.all([a, b, cpu].map((e, k) => e.forwardBatch(items.map((tokens, i) => ({ seq: seqs[k][i], tokens })))));
      ra.forEach((row, i) => {
        expect(Array.from(row), `step ${step} sequence ${i}: planned vs unplanned`).toEqual(Array.from(rb[i]));
        expect(relErr(row, rc[i]), `step ${step} sequence ${i}: vs CPU`).toBeLessThan(TOL);
      });
      items = ra.map((row, i) => [(step * 5 + i + row.length) % graph.model.vocab]);
    }
    if (moe) expect(a.moeStats()).toEqual(b.moeStats());
  } finally {
    a.dispose(); b.dispose(); cpu.dispose();
  }
}

const SHAPE: LlamaShape = { vocab: 40, dim: 32, layers: 3, heads: 4, kvHeads: 2, headDim: 8, ffn: 44, maxContext: 48 };
const PROMPTS = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11], [3, 1, 4, 1, 5]];

describe('planned activations on WebGPU', () => {
  it.each([
    ['fused', new Set<string>(), 1],
    ['unfused (--no-fuse all)', new Set(FUSION_KEYS), 1],
    ['fused, 3 flash-decoding splits', new Set<string>(), 3],
  ] as const)('%s: a batch of 3 sequences, bit-identical to one buffer per activation', async (_, noFuse, attentionSplits) => {
    const graph = runPipeline(denseLlama(SHAPE), noFuse).graph;
    const weights = new RandomWeights(graph.params, 5);
    await compare(graph, weights, (planMemory) => schedule(graph, [], { attentionSplits, planMemory, maxSequences: 4 }), PROMPTS);
  }, 180_000);

  it.each([['fused', true], ['dense (--no-fuse moe)', false]] as const)('MoE %s: logits and routing counts identical', async (_, fuse) => {
    const s = { experts: 6, topK: 2, dim: 16, heads: 2, kvHeads: 1, ffn: 12, layers: 2, vocab: 24, routing: 'mixtral', body: 'swiglu' } as const;
    const { graph } = compileMoe(s, fuse ? undefined : new Set(['moe']));
    const weights = moeWeights(graph, 3);
    await compare(graph, weights, (planMemory) => schedule(graph, [], { planMemory }), [[1, 2, 3, 4], [5, 6]], true);
  }, 180_000);
});
