// Compact weights end to end on WebGPU: llama GGUF files in f16, bf16 (kept as f16),
// q4_K, q5_K and a Q4_K_M-style mix (q4_K with q6_K for the output and for attn_v /
// ffn_down of the layers llama.cpp gives more bits; it covers q6_K) run with every matrix
// compact on the device (no f32 copy of any matrix: only the 1-D norms are f32) and
// device weight bytes equal to the file's tensor bytes plus the stated padding; logits
// agree with the CPU engine on the file's exact values (ggufQuant.ts's decoders) to f32
// accumulation error, in prefill (12 tokens: tiled kernels) and decode (GEMV).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufFile, GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { bufferBytes } from '../../program/program.ts';
import { tensorTypeIn, writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
import { expectClose } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-compact-engine-'));
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

// K-quant rows need K (dim, ffn, heads * headDim) a multiple of 256.
const base = { vocab: 300, dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 256, ctx: 32 } as const;
const CASES: GgufLlama[] = [
  { ...base, type: 'f16', tied: false, seed: 71 },
  { ...base, type: 'bf16', tied: true, seed: 72 },
  { ...base, type: 'q4_K', tied: true, seed: 73 },
  { ...base, type: 'q5_K', tied: false, seed: 74 },
  { ...base, type: 'q4_K_M', tied: false, seed: 76, layers: 3 },
];

describe('compact weights on WebGPU vs the CPU engine on the same values', () => {
  for (const m of CASES) {
    it(`${m.type}, ${m.tied ? 'tied' : 'untied'} output`, async () => {
      const file = join(dir, `m${m.seed}.gguf`);
      writeLlamaGguf(file, m);
      const text = importGguf(file);
      const plain = compileSpec(text, 'c.infer');
      const weights = GgufWeights.load(file, plain.program!.params);
      const program = compileSpec(text, 'c.infer', { weightTypes: weights.types() }).program!;
      const params = program.buffers.filter((b) => b.kind === 'param');
      // Every matrix compact, in its file type (bf16 as f16); only the norms are f32.
      for (const b of params) {
        const name = b.name.replace(/^param:/, '');
        const shape = program.params.find((p) => p.name === name)!.shape;
        const want = shape.length === 1 ? 'f32' : m.type === 'bf16' ? 'f16' : tensorTypeIn(m.type, name, m.layers);
        expect(b.dtype, name).toBe(want);
      }
      if (m.type === 'q4_K_M') expect(new Set(params.map((b) => b.dtype))).toEqual(new Set(['f32', 'q4_K', 'q6_K']));
      // Device bytes = the file's tensor bytes + padding (<= 2 bytes per block tensor, < 8 per f16 one).
      const fileBytes = GgufFile.with(file, (g) => g.tensors.reduce((s, t) => s + t.bytes, 0));
      const deviceBytes = params.reduce((s, b) => s + bufferBytes(b, { maxTokens: 1, pages: 1, maxSeqs: 1 }), 0);
      expect(deviceBytes - fileBytes).toBeGreaterThanOrEqual(0);
      expect(deviceBytes - fileBytes).toBeLessThan(8 * params.length);
      const cpu = new CpuEngine(plain.graph!, weights, plain.program!);
      const gpu = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights });
      try {
        const prompt = Int32Array.from({ length: 12 }, (_, i) => (i * 53 + m.seed) % m.vocab);
        const pos = Int32Array.from(prompt, (_, i) => i);
        expectClose(await gpu.forward(prompt, pos), await cpu.forward(prompt, pos), 1e-4, `${m.type} prefill`);
        for (let i = 0; i < 2; i++) {
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
