// Split params on WebGPU: the same random llama file compiled for artificially low buffer
// limits (so the embedding, the output projection and some layer matmuls are split into
// column parts) and for the default limits gives the same logits, bit for bit: each output
// column is computed by the same kernel code over the same K, only its dispatch differs.
// Prefill (tiled kernels, 12 tokens) and decode (GEMV) steps,
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

// Drawn from the global seed (test/setup.ts); one test per case, as each compiles its own
// kernels on lavapipe (the split program's parts have kernels of their own).
const CASES = fc.sample(fc.record({
  vocab: fc.integer({ min: 260, max: 600 }), dim: fc.constant(64), ffn: fc.constantFrom(64, 96),
  heads: fc.constantFrom(1, 2), layers: fc.constant(1), tied: fc.boolean(),
  type: fc.constantFrom<'f32' | 'q8_0' | 'q4_0'>('f32', 'q8_0', 'q4_0'), parts: fc.integer({ min: 2, max: 5 }), seed: fc.integer({ min: 1, max: 1000 }),
}), 3);

describe('split params on WebGPU give the logits of the unsplit program, bit for bit', () => {
  for (const s of CASES) {
    it(`${s.type}, vocab ${s.vocab}, ffn ${s.ffn}, ${s.tied ? 'tied' : 'untied'}, table in about ${s.parts} parts`, async () => {
      const { file, text, weightTypes } = llamaSpec(s);
      const whole = compileSpec(text, 's.infer', { weightTypes });
      // The embedding table's size over `parts`: it and the output projection (the same
      // param when tied) split into about that many parts. Layer matmuls stay whole: every
      // part is a kernel of its own to compile, and test/compiler/splitParams.test.ts covers
      // splitting them at random limits.
      const table = whole.program!.buffers.find((b) => b.name === 'param:token_embd')!;
      const layerMax = Math.max(...whole.program!.buffers.filter((b) => b.kind === 'param' && b.name.startsWith('param:blk.')).map((b) => bufferBytes(b, SIZING)));
      const cap = Math.max(Math.ceil(bufferBytes(table, SIZING) / s.parts), layerMax);
      const split = compileSpec(text, 's.infer', { weightTypes, limits: { maxBindingBytes: cap, maxBufferBytes: cap } }).program!;
      expect(split.buffers.filter((b) => b.part?.of === 'token_embd').length, 'the embedding is split').toBeGreaterThan(1);
      const weights = GgufWeights.load(file, whole.program!.params);
      const a = await WebGpuEngine.create({ device, program: whole.program!, backend: wgslBackend, weights });
      const b = await WebGpuEngine.create({ device, program: split, backend: wgslBackend, weights });
      const cpu = new CpuEngine(whole.graph!, weights, whole.program!);
      try {
        expect(b.stats().dispatchesPerForward).toBe(split.steps.length);
        // Prefill (12 tokens: the tiled kernels), then decode (the GEMV).
        for (const [T, from] of [[12, 0], [1, 12]]) {
          const ids = Int32Array.from({ length: T }, (_, i) => (i * 131 + s.seed + from * 7) % s.vocab);
          const pos = Int32Array.from({ length: T }, (_, i) => from + i);
          const [x, y] = [await a.forward(ids, pos), await b.forward(ids, pos)];
          expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength)), `T=${T} at ${from}`).toBe(true);
          expectClose(x, await cpu.forward(ids, pos), 1e-3, `unsplit vs CPU, T=${T}`);
        }
      } finally {
        a.dispose(); b.dispose(); cpu.dispose(); weights.release();
      }
    });
  }
});
