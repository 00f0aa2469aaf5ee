// The agreement suite body, shared by the f32/f16 and the quantised test files
// (two files, so vitest runs them on both cores). For each case: write the GGUF
// file, run llama.cpp once, then infer's CPU engine and WebGPU engine from the
// spec `infer import` writes for the file (WebGPU with f16 / bf16 (as f16) and block
// weights kept compact on the device, CPU on their exact f32 values), and check
//   - the prefill and decode distributions at every position within the case's bound;
//   - the 64 greedy tokens: identical for exact cases; for the others identical up
//     to the first near-tie (llama.cpp's top-2 gap under twice the bound), where
//     the allowed rounding difference may legitimately pick the other token.
// A table of the measured numbers is printed at the end.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import type { Engine } from '../../runtime/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { FIRST_PLAIN_TOKEN, llamaTensors, tensorTypeIn, writeLlamaGguf } from '../../runtime/weights/randomLlamaGguf.ts';
import { COMPACT_TYPES, deviceWeightType } from '../../program/quant.ts';
import type { AgreementCase } from './cases.ts';
import { compileImported, greedyAgreement, logprobDiff, runInfer, runLlamaCpp, type Run } from './harness.ts';

export const GREEDY_TOKENS = 64;

/** A prompt of BOS and seeded plain tokens. */
export function promptFor(c: AgreementCase): number[] {
  let s = c.seed * 2654435761 >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
  return [1, ...Array.from({ length: 7 }, () => FIRST_PLAIN_TOKEN + (next() % (c.vocab - FIRST_PLAIN_TOKEN)))];
}

export interface Row { label: string; engine: string; prefill: number; decode: number; ratio: number; greedy: string }

export function agreementSuite(name: string, cases: readonly AgreementCase[], greedyTokens = GREEDY_TOKENS): void {
  describe(name, () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-agree-'));
    const rows: Row[] = [];
    let device: GPUDevice;
    beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
    afterAll(() => {
      device?.destroy();
      rmSync(dir, { recursive: true, force: true });
      const fmt = (x: number) => x.toExponential(2);
      console.log(`${name}: max |logprob infer - llama.cpp| and greedy agreement\n` + rows.map((r) =>
        `  ${r.label.padEnd(48)} ${r.engine.padEnd(6)} prefill ${fmt(r.prefill)}  decode ${fmt(r.decode)}  of tolerance ${r.ratio.toFixed(3)}  greedy ${r.greedy}`).join('\n'));
    });

    for (const c of cases) {
      it(c.label, async () => {
        const file = join(dir, `${c.label.replace(/[^A-Za-z0-9]+/g, '_')}.gguf`);
        writeLlamaGguf(file, c);
        const prompt = promptFor(c);
        const ref = await runLlamaCpp(file, c.vocab, prompt, greedyTokens);
        expect(ref.greedy).toHaveLength(greedyTokens);
        const sequence = [...prompt, ...ref.greedy.slice(0, -1)];

        const spec = importGguf(file);
        const { graph, program } = compileImported(spec);
        const weights = GgufWeights.load(file, program.params);
        // WebGPU keeps f16 and block matrices (and token_embd) compact, dequantised in
        // its kernels; the CPU engine runs on the exact f32 values of the same tensors.
        const quantised = compileImported(spec, weights.types()).program;
        const fileTypes = new Set(llamaTensors(c).filter((t) => t.dims.length > 1)
          .map((t) => (t.param === 'token_embd' && c.embdType) || tensorTypeIn(c.type, t.param, c.layers)));
        for (const t of COMPACT_TYPES) {
          const want = [...fileTypes].some((f) => deviceWeightType(f) === t);
          expect(quantised.buffers.some((b) => b.dtype === t), `${c.label}: ${t} params kept compact`).toBe(want);
        }
        const engines: [string, () => Promise<Engine>][] = [
          ['cpu', async () => new CpuEngine(graph, weights, program)],
          ['webgpu', () => WebGpuEngine.create({ device, program: quantised, backend: wgslBackend, weights })],
        ];
        for (const [kind, make] of engines) {
          const engine = await make();
          try {
            check(c, kind, ref, await runInfer(engine, prompt, greedyTokens, sequence), prompt.length, rows, greedyTokens);
          } finally {
            engine.dispose();
          }
        }
      });
    }
  });
}

export function check(c: AgreementCase, engine: string, ref: Run, got: Awaited<ReturnType<typeof runInfer>>, P: number, rows: Row[], greedyTokens = GREEDY_TOKENS): void {
  const prefill = logprobDiff(ref.prefill, got.prefill, c.tol);
  const g = greedyAgreement(ref, got.greedy, P, c.tol);
  // generate() step j predicts greedy[j]: llama.cpp's prefill row P - 1 + j. Step j's
  // context is infer's own greedy[0 .. j-1], the same as llama.cpp's only while the two
  // paths agree (j <= g.same); past a divergence (allowed after a near-tie, checked
  // below) the rows describe different sequences, and the prefill check, on llama.cpp's
  // sequence for both, is the comparison that covers those positions.
  const steps = Math.min(ref.prefill.length - P + 1, g.same + 1);
  const decode = logprobDiff(ref.prefill.slice(P - 1, P - 1 + steps), got.decode.slice(0, steps), c.tol);
  const exact = c.tol.rel === 0;
  rows.push({
    label: c.label, engine, prefill: prefill.max, decode: decode.max, ratio: Math.max(prefill.ratio, decode.ratio),
    greedy: `${g.same}/${greedyTokens}${g.firstTie < greedyTokens ? ` (first near-tie at ${g.firstTie})` : ''}`,
  });
  expect(prefill.ratio, `${c.label} ${engine}: prefill |dlogprob| over tolerance at ${prefill.at}`).toBeLessThanOrEqual(1);
  expect(decode.ratio, `${c.label} ${engine}: decode |dlogprob| over tolerance at ${decode.at}`).toBeLessThanOrEqual(1);
  if (exact || g.firstTie >= greedyTokens) expect(got.greedy, `${c.label} ${engine}: greedy tokens`).toEqual(ref.greedy);
  else expect(g.same, `${c.label} ${engine}: greedy tokens differ before llama.cpp's first near-tie`).toBeGreaterThanOrEqual(g.firstTie);
}
