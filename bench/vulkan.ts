// infer's WebGPU kernels against llama.cpp's Vulkan kernels on the same adapter and the same
// GGUF files: both run on this machine's software Vulkan driver (lavapipe), so the ratio
// compares generated WGSL with hand-written GLSL compute shaders on one substrate.
// bench/llamacpp.ts compares with llama.cpp's CPU build; this driver is its GPU sibling.
//
// llama-20m's architecture as random-weight GGUF files (f32 and q4_0 matrices), at 1 and 4
// sequences: prefill (every sequence's prompt) and greedy decode, in alternating rounds
// (infer, llama.cpp, infer, ...: this machine's speed drifts), best round each. In the same
// run: the streaming-read ceiling (bench/streaming.ts) and, from `infer plan`'s bytes per
// step, infer's decode as a fraction of it and the plan's predicted decode time at it.
// Writes bench/results/vulkan.{json,md,svg}.
//   node --import tsx bench/vulkan.ts    (INFER_BENCH_TOKENS decode steps, default 32; INFER_BENCH_ROUNDS, default 2)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { importGguf } from '../cli/importSpec.ts';
import { compileSpec } from '../compiler/compile.ts';
import { batchStepCost } from '../compiler/plan/step.ts';
import type { Program } from '../program/program.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { GgufWeights } from '../runtime/weights/gguf.ts';
import { writeLlamaGguf } from '../runtime/weights/randomLlamaGguf.ts';
import { runBench, writeResults } from './report.ts';
import { measureStreaming } from './streaming.ts';
import { greedyRun, llamaVulkan, type Run } from './fixtures/peers.ts';

const TOKENS = Number(process.env.INFER_BENCH_TOKENS ?? 32);
const ROUNDS = Number(process.env.INFER_BENCH_ROUNDS ?? 2);
const SHAPE = { vocab: 4096, dim: 512, layers: 6, heads: 8, kvHeads: 2, ffn: 1408, ctx: 1024, tied: false, seed: 11 } as const;
const PROMPT_LEN = 32;
const log = (s: string) => process.stderr.write(s + '\n');

interface Row {
  weights: string; sequences: number;
  infer_prefill_tok_s: number; llama_prefill_tok_s: number; infer_decode_tok_s: number; llama_decode_tok_s: number;
  decode_ratio: number; prefill_ratio: number;
  /** infer's decode bytes per step (plan) x steps/s, against the streaming ceiling. */
  infer_decode_gb_s: number; of_streaming: number;
  /** The plan's decode time per step at the measured ceiling, and the measured one. */
  plan_ms_at_ceiling: number; measured_ms: number; same_tokens: string;
}

const prompts = (n: number): number[][] => Array.from({ length: n }, (_, s) => [1, ...Array.from({ length: PROMPT_LEN - 1 }, (_, i) => 300 + ((i * 37 + 11 + s * 101) % 3700))]);

function best(runs: Run[]): Run {
  return { prefillTokS: Math.max(...runs.map((r) => r.prefillTokS)), decodeTokS: Math.max(...runs.map((r) => r.decodeTokS)), tokens: runs[runs.length - 1].tokens };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'infer-bench-vulkan-'));
  const gpu = await createGpuDevice();
  const adapter = (gpu as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const rows: Row[] = [];
  let streaming = { gbPerS: 0 };
  let llamaDevice = '';
  try {
    log('streaming-read ceiling (64 MiB)');
    streaming = await measureStreaming(gpu);
    log(`  ${streaming.gbPerS.toFixed(2)} GB/s`);
    for (const type of ['f32', 'q4_0'] as const) {
      const file = join(dir, `llama-20m-${type}.gguf`);
      writeLlamaGguf(file, { ...SHAPE, type });
      const spec = importGguf(file);
      const f32 = compileSpec(spec, 'imported.infer');
      const weights = GgufWeights.load(file, f32.program!.params);
      const program: Program = compileSpec(spec, 'imported.infer', { weightTypes: weights.types() }).program!;
      for (const sequences of [1, 4]) {
        const engine = await WebGpuEngine.create({ device: gpu, program, backend: wgslBackend, weights, maxSequences: sequences });
        const llama = await llamaVulkan(file, sequences);
        llamaDevice = llama.device;
        const ps = prompts(sequences);
        const inferRuns: Run[] = [], llamaRuns: Run[] = [];
        try {
          // Warm-up: both compile (or JIT) their shaders on first use, prefill and decode alike.
          await greedyRun(engine, ps.map((p) => p.slice(0, 12)), 2);
          await llama.run(ps.map((p) => p.slice(0, 12)), 2);
          for (let r = 0; r < ROUNDS; r++) {
            log(`${type} x${sequences} round ${r + 1}/${ROUNDS}`);
            inferRuns.push(await greedyRun(engine, ps, TOKENS));
            llamaRuns.push(await llama.run(ps, TOKENS));
            log(`  infer prefill ${inferRuns[r].prefillTokS.toFixed(1)} decode ${inferRuns[r].decodeTokS.toFixed(1)} tok/s; llama.cpp vulkan prefill ${llamaRuns[r].prefillTokS.toFixed(1)} decode ${llamaRuns[r].decodeTokS.toFixed(1)} tok/s`);
          }
        } finally {
          engine.dispose();
          await llama.dispose();
        }
        const i = best(inferRuns), l = best(llamaRuns);
        // Decode contexts run from PROMPT_LEN + 1 to PROMPT_LEN + TOKENS: the plan's bytes at the middle one.
        const step = batchStepCost(program, sequences, 1, PROMPT_LEN + 1 + TOKENS / 2);
        const stepsPerS = i.decodeTokS / sequences;
        const gbs = (step.bytesRead * stepsPerS) / 1e9;
        let same = 0;
        while (same < i.tokens[0].length && i.tokens[0][same] === l.tokens[0][same]) same++;
        rows.push({
          weights: type, sequences, infer_prefill_tok_s: i.prefillTokS, llama_prefill_tok_s: l.prefillTokS, infer_decode_tok_s: i.decodeTokS, llama_decode_tok_s: l.decodeTokS,
          decode_ratio: i.decodeTokS / l.decodeTokS, prefill_ratio: i.prefillTokS / l.prefillTokS,
          infer_decode_gb_s: gbs, of_streaming: gbs / streaming.gbPerS,
          plan_ms_at_ceiling: (step.bytesRead / (streaming.gbPerS * 1e9)) * 1e3, measured_ms: 1000 / stepsPerS,
          same_tokens: `${same}/${i.tokens[0].length}`,
        });
      }
      rmSync(file);
    }
  } finally {
    gpu.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const md = [
    '# infer WebGPU vs llama.cpp Vulkan on the same adapter',
    '',
    `llama-20m's architecture (vocab 4096, 6 layers, dim 512, GQA 8/2, ffn 1408), random weights in GGUF files; ${PROMPT_LEN}-token prompts, ${TOKENS} greedy decode steps, best of ${ROUNDS} alternating rounds.`,
    `infer: WebGPU (Dawn) on ${adapter?.description || adapter?.vendor || 'this adapter'}; llama.cpp: node-llama-cpp's prebuilt Vulkan build on ${llamaDevice}, all layers offloaded, F32 KV, no flash attention.`,
    `Streaming-read ceiling measured in this run: ${streaming.gbPerS.toFixed(2)} GB/s. "plan ms" is infer plan's decode bytes per step at that ceiling (the calibrated prediction); "measured ms" is infer's decode step.`,
    '',
    '| weights | seqs | infer prefill tok/s | llama.cpp prefill tok/s | prefill ratio | infer decode tok/s | llama.cpp decode tok/s | decode ratio | infer decode GB/s | of streaming | plan ms/step | measured ms/step | greedy tokens equal |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.weights} | ${r.sequences} | ${f(r.infer_prefill_tok_s)} | ${f(r.llama_prefill_tok_s)} | ${r.prefill_ratio.toFixed(2)}x | ${f(r.infer_decode_tok_s)} | ${f(r.llama_decode_tok_s)} | ${r.decode_ratio.toFixed(2)}x | ${r.infer_decode_gb_s.toFixed(2)} | ${(100 * r.of_streaming).toFixed(0)}% | ${r.plan_ms_at_ceiling.toFixed(1)} | ${r.measured_ms.toFixed(1)} | ${r.same_tokens} |`),
    '',
    'Both engines run on the same 2 CPU cores through lavapipe: the ratios compare kernels and host work on one substrate, not what a GPU would show.',
    'q4_0: llama.cpp rounds activations to 8 bits in its quantised matmuls and infer does not, so greedy tokens may part after a near-tie.',
  ].join('\n');
  writeFileSync('bench/results/vulkan.svg', chart(rows));
  writeResults('vulkan', { prompt: PROMPT_LEN, tokens: TOKENS, rounds: ROUNDS, streaming_gb_s: streaming.gbPerS, llama_device: llamaDevice, rows }, md + '\n\n![infer vs llama.cpp Vulkan](vulkan.svg)');
}

/** Grouped bars: decode and prefill tok/s of both engines per configuration. */
function chart(rows: Row[]): string {
  const W = 760, H = 340, top = 60, ph = 200, x0 = 60, pw = 300;
  const panel = (px0: number, title: string, a: number[], b: number[]) => {
    const max = Math.max(...a, ...b) * 1.15 || 1;
    const gw = pw / rows.length, bw = gw / 3;
    const bars = rows.map((r, i) => {
      const x = px0 + i * gw + gw / 6;
      const bar = (v: number, dx: number, c: string) => `<rect x="${(x + dx).toFixed(1)}" y="${(top + ph - (v / max) * ph).toFixed(1)}" width="${bw.toFixed(1)}" height="${((v / max) * ph).toFixed(1)}" fill="${c}"/><text x="${(x + dx + bw / 2).toFixed(1)}" y="${(top + ph - (v / max) * ph - 4).toFixed(1)}" text-anchor="middle" font-size="10">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`;
      return bar(a[i], 0, '#1f77b4') + bar(b[i], bw, '#ff7f0e') + `<text x="${(x + bw).toFixed(1)}" y="${top + ph + 16}" text-anchor="middle" font-size="10">${r.weights} x${r.sequences}</text>`;
    }).join('');
    return `<g><line x1="${px0}" y1="${top + ph}" x2="${px0 + pw}" y2="${top + ph}" stroke="#888"/>${bars}<text x="${px0 + pw / 2}" y="${top - 12}" text-anchor="middle" font-weight="bold">${title}</text></g>`;
  };
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">infer WebGPU (blue) vs llama.cpp Vulkan (orange), same adapter, same GGUF</text>
${panel(x0, 'decode tok/s', rows.map((r) => r.infer_decode_tok_s), rows.map((r) => r.llama_decode_tok_s))}
${panel(x0 + 380, 'prefill tok/s', rows.map((r) => r.infer_prefill_tok_s), rows.map((r) => r.llama_prefill_tok_s))}
</svg>
`;
}

runBench('vulkan', main);
