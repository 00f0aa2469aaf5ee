// Greedy sampling on the device (the argmax kernel, ProgramRunner.forwardGreedy): the kernel
// agrees with runtime/sampling.ts `greedy` on random rows full of ties, NaNs and infinities
// (lowest index on ties, NaN never chosen, -1 for an all-NaN row); an engine's greedy decode
// of a batch equals host greedy over its full logits, step by step, while reading back one
// id per sequence (4 bytes) instead of its logits row.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { ProgramRunner } from '../../runtime/runner/programRunner.ts';
import { TrafficDevice } from '../../runtime/runner/traffic.ts';
import { greedy } from '../../runtime/sampling.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuDevice } from '../../runtime/webgpu/gpuDevice.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { runOnGpu } from './harness.ts';

let gpu: GPUDevice;
beforeAll(async () => { gpu = await createGpuDevice(); }, 120_000);
afterAll(() => gpu?.destroy());

const hostGreedy = (row: Float32Array): number => { try { return greedy(row); } catch { return -1; } };

describe('device greedy sampling', () => {
  it('argmax kernel = host greedy on rows with ties, NaN and infinities', async () => {
    const value = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: -3, max: 3 }).map(Math.fround) },
      { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) },
      { weight: 2, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
    );
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 1500 }), fc.integer({ min: 1, max: 5 }), fc.integer(), async (width, nRows, seed) => {
      const rows = await fc.sample(fc.array(value, { minLength: width * nRows, maxLength: width * nRows }), { seed, numRuns: 1 })[0];
      const x = Float32Array.from(rows);
      // Every few rows one that is all NaN, or all -Infinity (whose first index wins).
      if (seed % 5 === 0) x.fill(NaN, 0, width);
      if (seed % 7 === 0) x.fill(-Infinity, (nRows - 1) * width);
      const spec: KernelSpec = { kind: 'argmax', width };
      const [k] = wgslBackend.render(kernelKey(spec), spec);
      // Rows asked for in reverse order, so the kernel must follow `rows`, not its group index.
      const order = Int32Array.from({ length: nRows }, (_, i) => nRows - 1 - i);
      const out = await runOnGpu(gpu, k, nRows, { x, rows: order }, { out: nRows });
      const got = Array.from(new Int32Array(out.out.buffer, 0, nRows));
      expect(got).toEqual(Array.from(order, (r) => hostGreedy(x.subarray(r * width, (r + 1) * width))));
    }), { numRuns: 15 });
  });

  it('batched greedy decode equals host greedy over full logits; one id per sequence comes back', async () => {
    const file = 'examples/tiny-llama.infer';
    const p = compileSpec(readFileSync(file, 'utf8'), file).program!;
    const weights = new RandomWeights(p.params, 7);
    const traffic = new TrafficDevice(new WebGpuDevice(gpu));
    const device = await ProgramRunner.open({ device: traffic, program: p, backend: wgslBackend, weights, maxSequences: 3 });
    const host = await WebGpuEngine.create({ device: gpu, program: p, backend: wgslBackend, weights, maxSequences: 3 });
    try {
      const prompts = [[1, 2, 3, 4, 5], [9], [7, 7, 200, 31]];
      const a = prompts.map(() => device.kv.join()), b = prompts.map(() => host.kv.join());
      let next = prompts;
      for (let step = 0; step < 6; step++) {
        const ids = await device.forwardGreedy(next.map((tokens, i) => ({ seq: a[i], tokens })));
        const rows = await host.forwardBatch(next.map((tokens, i) => ({ seq: b[i], tokens })), { rows: 'last' });
        expect(ids, `step ${step}`).toEqual(rows.map(greedy));
        const work = traffic.lastSubmission!;
        expect(work.readbacks[0].bytes).toBe(4 * prompts.length);
        expect(work.dispatches.length).toBe(p.steps.length + 1);
        next = ids.map((id) => [id]);
      }
    } finally {
      device.dispose(); host.dispose();
    }
  });
});
