// The whole quantised path on WebGPU (block embedding, GEMV decode and tiled prefill
// with every fused prologue / residual a llama uses, tied output) against the CPU
// engine on the exact f32 dequantisation of the same file: logits must agree to
// f32 accumulation error, prefill (T >= 8: tiled kernels) and decode (T = 1: GEMV).
// Mixtral-style MoE files too: the 3-D expert tensors stay blocks for the fused
// moe_experts kernels and for the dense expert_matmul of the unfused (--no-fuse moe)
// program, over random expert counts, top_k and K (dim, ffn) multiples of 32.
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import type { Program } from '../../program/program.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
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

/** Prefill (12 tokens: tiled matmuls) and 3 decode steps: WebGPU on blocks vs CPU on their f32 values. */
async function compareEngines(gpu: WebGpuEngine, cpu: CpuEngine, vocab: number, seed: number, what: string): Promise<void> {
  const prompt = Int32Array.from({ length: 12 }, (_, i) => (i * 53 + seed) % vocab);
  const pos = Int32Array.from(prompt, (_, i) => i);
  expectClose(await gpu.forward(prompt, pos), await cpu.forward(prompt, pos), 1e-4, `${what} prefill`);
  for (let i = 0; i < 3; i++) {
    const t = Int32Array.of((i * 97 + 5) % vocab), p = Int32Array.of(prompt.length + i);
    expectClose(await gpu.forward(t, p), await cpu.forward(t, p), 1e-4, `${what} decode ${i}`);
  }
}

describe('quantised MoE on WebGPU vs the CPU engine on the dequantised weights', () => {
  const shape = fc.record({
    type: fc.constantFrom<'q8_0' | 'q4_0'>('q8_0', 'q4_0'), experts: fc.integer({ min: 2, max: 8 }), k0: fc.integer({ min: 1, max: 3 }),
    dim: fc.constantFrom(32, 64), ffn: fc.constantFrom(32, 64, 96), layers: fc.integer({ min: 1, max: 2 }), seed: fc.integer({ min: 100, max: 10_000 }),
  }).map(({ k0, ...s }) => ({ ...s, expertsUsed: Math.min(k0, s.experts) }));
  const expertKernels = (p: Program) => p.kernels.map((k) => k.spec).filter((s): s is Extract<KernelSpec, { kind: 'moe_experts' }> => s.kind === 'moe_experts');

  for (const type of ['q8_0', 'q4_0'] as const) {
    for (const fuse of [true, false]) {
      it(`${type}, ${fuse ? 'fused moe_experts' : 'unfused (--no-fuse moe) expert_matmul'}: expert tensors stay blocks`, () => fc.assert(fc.asyncProperty(shape.map((s) => ({ ...s, type })), async (s) => {
        const m: GgufLlama = { vocab: 270, heads: 2, kvHeads: 1, tied: false, ctx: 32, ...s };
        const file = join(dir, `moe-${type}-${fuse}-${s.seed}.gguf`);
        writeLlamaGguf(file, m);
        const text = importGguf(file);
        const noFuse = fuse ? undefined : new Set(['moe']);
        const plain = compileSpec(text, 'moe.infer', { noFuse });
        const weights = GgufWeights.load(file, plain.program!.params);
        const quant = compileSpec(text, 'moe.infer', { noFuse, weightTypes: weights.types() }).program!;
        const dtype = (name: string) => quant.buffers.find((b) => b.name === `param:${name}`)!.dtype;
        for (let l = 0; l < m.layers; l++) {
          for (const t of ['gate', 'up', 'down']) expect(dtype(`blk.${l}.ffn_${t}_exps`), `blk.${l}.ffn_${t}_exps`).toBe(type);
          // The router: moe_route reads f32; unfused it is an ordinary matmul weight.
          expect(dtype(`blk.${l}.ffn_gate_inp`)).toBe(fuse ? 'f32' : type);
        }
        const kernels = expertKernels(quant);
        expect(kernels.length).toBeGreaterThan(0);
        for (const k of kernels) expect(k).toMatchObject({ wtype: type, dense: !fuse });
        const cpu = new CpuEngine(plain.graph!, weights, plain.program!);
        const gpu = await WebGpuEngine.create({ device, program: quant, backend: wgslBackend, weights });
        try {
          await compareEngines(gpu, cpu, m.vocab, s.seed, `${type} MoE E=${s.experts} k=${s.expertsUsed} dim=${s.dim} ffn=${s.ffn}${fuse ? '' : ' unfused'}`);
        } finally {
          gpu.dispose();
          cpu.dispose();
        }
      }), { numRuns: 2 }));
    }
  }
});
