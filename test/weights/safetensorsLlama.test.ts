// The same random llama written as a GGUF file and as its Hugging Face safetensors
// twin (HF names, HF's RoPE row order for q_proj / k_proj): infer must load the same
// weights from both and so give identical logits, on the CPU engine and on WebGPU,
// and `infer run SPEC --weights FILE.safetensors` must give the GGUF run's tokens.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { main } from '../../cli/main.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import type { Engine } from '../../runtime/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { SafetensorsWeights } from '../../runtime/weights/hfLlama.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
import { writeLlamaSafetensors } from '../fixtures/hfLlama.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-st-llama-'));
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const CASES: [GgufLlama, 'F32' | 'F16' | 'BF16'][] = [
  [{ vocab: 288, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 96, type: 'f32', tied: false, seed: 41, ctx: 64 }, 'F32'],
  [{ vocab: 270, dim: 48, layers: 1, heads: 6, kvHeads: 1, ffn: 80, type: 'f16', tied: true, seed: 42, ctx: 64 }, 'F16'],
  [{ vocab: 260, dim: 32, layers: 2, heads: 2, kvHeads: 2, ffn: 64, type: 'bf16', tied: false, seed: 43, ctx: 64, headDim: 8 }, 'BF16'],
];
const prompt = Int32Array.from([1, 259, 3, 258, 200, 17]);

describe('safetensors and GGUF give identical logits', () => {
  for (const [m, dtype] of CASES) {
    it(`${m.heads} heads / ${m.kvHeads} KV heads, ${dtype}, ${m.tied ? 'tied' : 'untied'}`, async () => {
      const gguf = join(dir, `m${m.seed}.gguf`), st = join(dir, `m${m.seed}.safetensors`);
      writeLlamaGguf(gguf, m);
      writeLlamaSafetensors(st, m, dtype);
      const c = compileSpec(importGguf(gguf), 'imported.infer');
      const program = c.program!, graph = c.graph!;
      const a = GgufWeights.load(gguf, program.params);
      const b = SafetensorsWeights.load(st, program.params, { heads: m.heads, kvHeads: m.kvHeads });
      for (const p of program.params) expect(Array.from(b.get(p.name)), p.name).toEqual(Array.from(a.get(p.name)));
      const positions = Int32Array.from(prompt, (_, i) => i);
      const logits = async (e: Engine) => { try { return Array.from(await e.forward(prompt, positions)); } finally { e.dispose(); } };
      expect(await logits(new CpuEngine(graph, b, program))).toEqual(await logits(new CpuEngine(graph, a, program)));
      const gpu = (w: GgufWeights | SafetensorsWeights) => WebGpuEngine.create({ device, program, backend: wgslBackend, weights: w });
      expect(await logits(await gpu(b))).toEqual(await logits(await gpu(a)));
    });
  }

  it('infer run --weights FILE.safetensors gives the GGUF run\'s tokens', async () => {
    const [m] = CASES[0];
    const spec = join(dir, 'cli.infer');
    writeFileSync(spec, importGguf(join(dir, `m${m.seed}.gguf`)));
    const run = async (file: string) => {
      let out = '', err = '';
      const code = await main(['run', spec, '--weights', file, '--backend', 'cpu', '--json', '--tokens', '1,270,281', '--max-tokens', '12', '--ignore-eos'],
        { out: (t) => { out += t; }, err: (t) => { err += t; } });
      expect(code, err).toBe(0);
      return JSON.parse(out).tokens as number[];
    };
    const tokens = await run(join(dir, `m${m.seed}.gguf`));
    expect(tokens).toHaveLength(12);
    expect(await run(join(dir, `m${m.seed}.safetensors`))).toEqual(tokens);
  });
});
