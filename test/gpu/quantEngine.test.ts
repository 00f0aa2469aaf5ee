// The whole quantised path on WebGPU (block embedding, GEMV decode and tiled prefill
// with every fused prologue / residual a llama uses, tied output) against the CPU
// engine on the exact f32 dequantisation of the same file: logits must agree to
// f32 accumulation error, prefill (T >= 8: tiled kernels) and decode (T = 1: GEMV).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { importGguf } from '../../compiler/import.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { writeLlamaGguf, type GgufLlama } from '../fixtures/ggufLlama.ts';
import { expectClose } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-quant-engine-'));
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const CASES: GgufLlama[] = [
  { vocab: 300, dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 96, type: 'q8_0', tied: false, seed: 61, ctx: 32 },
  { vocab: 290, dim: 64, layers: 1, heads: 2, kvHeads: 1, ffn: 96, type: 'q4_0', tied: true, seed: 62, ctx: 32 },
];

describe('quantised WebGPU engine vs the CPU engine on the dequantised weights', () => {
  for (const m of CASES) {
    it(`${m.type}, ${m.tied ? 'tied' : 'untied'} output`, async () => {
      const file = join(dir, `m${m.seed}.gguf`);
      writeLlamaGguf(file, m);
      const text = importGguf(file);
      const plain = compileSpec(text, 'q.infer');
      const weights = GgufWeights.load(file, plain.program!.params);
      const quant = compileSpec(text, 'q.infer', { weightTypes: weights.types() }).program!;
      expect(quant.buffers.filter((b) => b.dtype === m.type).length).toBe(1 + 7 * m.layers + (m.tied ? 0 : 1));
      const cpu = new CpuEngine(plain.graph!, weights, plain.program!);
      const gpu = await WebGpuEngine.create({ device, program: quant, backend: wgslBackend, weights });
      try {
        const prompt = Int32Array.from({ length: 12 }, (_, i) => (i * 53 + m.seed) % m.vocab);
        const pos = Int32Array.from(prompt, (_, i) => i);
        expectClose(await gpu.forward(prompt, pos), await cpu.forward(prompt, pos), 1e-4, `${m.type} prefill`);
        for (let i = 0; i < 3; i++) {
          const t = Int32Array.of((i * 97 + 5) % m.vocab), p = Int32Array.of(prompt.length + i);
          expectClose(await gpu.forward(t, p), await cpu.forward(t, p), 1e-4, `${m.type} decode ${i}`);
        }
      } finally {
        gpu.dispose();
        cpu.dispose();
      }
    });
  }
});
