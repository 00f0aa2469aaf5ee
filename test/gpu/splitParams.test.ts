// Split params on WebGPU: the same random llama file compiled for artificially low buffer
// limits (so the embedding, the output projection and some layer matmuls are split into
// column parts) and for the default limits gives the same logits, bit for bit: each output
// column is computed by the same kernel code over the same K, only its dispatch differs.
// Prefill (tiled kernels, 12 tokens), few-token GEMV (3 tokens) and decode (GEMV) steps,
// f32 / q8_0 / q4_0 weights, tied and untied outputs. The unsplit program is itself
// checked against the CPU engine elsewhere (quantEngine.test.ts, engine.test.ts); here
// it is also checked once per case, loosely, so both cannot be wrong together.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { bufferBytes } from '../../program/program.ts';
import { llamaSpec } from '../fixtures/splitLlama.ts';
import { expectClose } from './harness.ts';

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const SIZING = { maxTokens: 1, pages: 1, maxSeqs: 1 };

describe('split params on WebGPU', () => {
  it('give the logits of the unsplit program, bit for bit', async () => {
    const shape = fc.record({
      vocab: fc.integer({ min: 260, max: 600 }), dim: fc.constant(64), ffn: fc.constantFrom(64, 96),
      heads: fc.constantFrom(1, 2), layers: fc.constant(1), tied: fc.boolean(),
      type: fc.constantFrom<'f32' | 'q8_0' | 'q4_0'>('f32', 'q8_0', 'q4_0'), parts: fc.integer({ min: 2, max: 5 }), seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(fc.asyncProperty(shape, async (s) => {
      const { file, text, weightTypes } = llamaSpec(s);
      const whole = compileSpec(text, 's.infer', { weightTypes });
      // The embedding table's size over `parts`: it splits into about that many parts, and
      // any layer matmul over the cap too.
      const table = whole.program!.buffers.find((b) => b.name === 'param:token_embd')!;
      const cap = Math.max(Math.ceil(bufferBytes(table, SIZING) / s.parts), 4 * Math.max(s.dim, s.ffn) + 8);
      const split = compileSpec(text, 's.infer', { weightTypes, limits: { maxBindingBytes: cap, maxBufferBytes: cap } }).program!;
      const parts = split.buffers.filter((b) => b.part?.of === 'token_embd');
      expect(parts.length, 'the embedding is split').toBeGreaterThan(1);
      const weights = GgufWeights.load(file, whole.program!.params);
      const a = await WebGpuEngine.create({ device, program: whole.program!, backend: wgslBackend, weights });
      const b = await WebGpuEngine.create({ device, program: split, backend: wgslBackend, weights });
      const cpu = new CpuEngine(whole.graph!, weights, whole.program!);
      try {
        expect(b.stats().dispatchesPerForward).toBe(split.steps.length);
        const run = async (T: number, from: number) => {
          const ids = Int32Array.from({ length: T }, (_, i) => (i * 131 + s.seed + from * 7) % s.vocab);
          const pos = Int32Array.from({ length: T }, (_, i) => from + i);
          const [x, y] = [await a.forward(ids, pos), await b.forward(ids, pos)];
          expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength)), `T=${T} at ${from}`).toBe(true);
          return { ids, pos, x };
        };
        const first = await run(12, 0);
        expectClose(first.x, await cpu.forward(first.ids, first.pos), 1e-3, 'unsplit vs CPU');
        await run(3, 12);
        await run(1, 15);
      } finally {
        a.dispose(); b.dispose(); cpu.dispose(); weights.release();
      }
    }), { numRuns: 2 });
  });
});
