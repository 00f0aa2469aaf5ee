// Per-dispatch timestamps (runtime/webgpu/profiler.ts): a profiled engine computes the same
// logits as an unprofiled one, and accounts for every step of every forward with GPU time.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
afterAll(() => device?.destroy());

it('a profiled forward returns the same logits and times every step of every forward', () =>
  fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 999 }), async (T, forwards, seed) => {
    const graph = runPipeline(denseLlama({ vocab: 37, dim: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, ffn: 24, maxContext: 32 })).graph;
    const program = schedule(graph, []);
    const weights = new RandomWeights(graph.params, seed);
    const plain = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights });
    const prof = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights, profile: true });
    try {
      expect(device.features.has('timestamp-query')).toBe(true);
      expect(plain.profile()).toBeNull();
      for (let f = 0; f < forwards; f++) {
        const tokens = Int32Array.from({ length: T }, (_, i) => (seed + 7 * i + f) % 37);
        const positions = Int32Array.from({ length: T }, (_, i) => f * T + i);
        const a = await plain.forward(tokens, positions, { rows: 'all' });
        const b = await prof.forward(tokens, positions, { rows: 'all' });
        expect(Array.from(b)).toEqual(Array.from(a));
      }
      const steps = prof.profile(true)!;
      expect(steps.map((s) => s.label)).toEqual(program.steps.map((s) => s.label));
      for (const s of steps) { expect(s.calls).toBe(forwards); expect(s.ns).toBeGreaterThanOrEqual(0); }
      expect(steps.reduce((a, s) => a + s.ns, 0)).toBeGreaterThan(0);
      // reset: counting starts again.
      expect(prof.profile()!.every((s) => s.calls === 0 && s.ns === 0)).toBe(true);
    } finally { plain.dispose(); prof.dispose(); }
  }), { numRuns: 3 }), 120_000);
