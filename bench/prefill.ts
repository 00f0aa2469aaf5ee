// Prefill (prompt processing) on WebGPU: where the time goes, and one kernel set against
// another. llama-20m's architecture as random-weight GGUF files (f32 and q4_0), as
// bench/vulkan.ts, prompts of INFER_BENCH_PROMPTS tokens (default 16,64), 1 sequence.
//   profile (default): GPU time per prompt by kernel kind (timestamp queries around every
//     dispatch), against the wall time of an unprofiled prefill.
//   INFER_BASE=DIR (a checkout of another commit, with node_modules): its WGSL backend
//     (DIR/backends/wgsl/render.ts) against this checkout's, same Program, same device, same
//     weights, in alternating rounds; per round the ratio base time / this time for a
//     prefill of each prompt and for a decode step; medians over INFER_BENCH_ROUNDS (7).
//     This machine's speed drifts with its load: only the per-round ratios are comparable.
//     INFER_BENCH_SEQS=4: every step carries 4 sequences (prefill 4 prompts, decode 4 tokens).
// Writes bench/results/prefill.{md,json} (prefill-ab.*, prefill-ab-x<SEQS>.* in the A/B mode).
//   node --import tsx bench/prefill.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Backend } from '../backends/backend.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { importGguf } from '../cli/importSpec.ts';
import { compileSpec } from '../compiler/compile.ts';
import type { Program } from '../program/program.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { GgufWeights } from '../runtime/weights/gguf.ts';
import { writeLlamaGguf } from '../runtime/weights/randomLlamaGguf.ts';
import { runBench, writeResults } from './report.ts';

const PROMPTS = (process.env.INFER_BENCH_PROMPTS ?? '16,64').split(',').map(Number);
const ROUNDS = Number(process.env.INFER_BENCH_ROUNDS ?? 7);
const TYPES = (process.env.INFER_BENCH_TYPES ?? 'f32,q4_0').split(',') as ('f32' | 'q4_0')[];
const DECODE = 16;
/** Sequences per step (INFER_BENCH_SEQS, default 1): 4 measures batched decode (the multi-token kernels at 4 tokens). */
const SEQS = Number(process.env.INFER_BENCH_SEQS ?? 1);
const SHAPE = { vocab: 4096, dim: 512, layers: 6, heads: 8, kvHeads: 2, ffn: 1408, ctx: 1024, tied: false, seed: 11 } as const;
const log = (s: string) => process.stderr.write(s + '\n');
const prompt = (n: number): number[] => [1, ...Array.from({ length: n - 1 }, (_, i) => 300 + ((i * 37 + 11) % 3700))];
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** Milliseconds of one prefill of `tokens` in each of SEQS fresh sequences (one step), and of DECODE decode steps after it, per step. */
async function timed(engine: WebGpuEngine, tokens: number[]): Promise<{ prefillMs: number; decodeMs: number }> {
  engine.reset();
  const seqs = Array.from({ length: SEQS }, () => engine.kv.join());
  const t0 = performance.now();
  let next = await engine.forwardGreedy(seqs.map((seq) => ({ seq, tokens })));
  const t1 = performance.now();
  for (let s = 0; s < DECODE; s++) next = await engine.forwardGreedy(seqs.map((seq, i) => ({ seq, tokens: [next[i]] })));
  return { prefillMs: t1 - t0, decodeMs: (performance.now() - t1) / DECODE };
}

function kindOf(p: Program, key: string): string {
  const spec = p.kernels.find((k) => k.key === key)!.spec as { kind: string; prologue?: string; residual?: boolean };
  return spec.kind + (spec.prologue && spec.prologue !== 'none' ? `+${spec.prologue}` : '') + (spec.residual ? '+residual' : '');
}

async function model(type: 'f32' | 'q4_0', dir: string): Promise<{ program: Program; weights: GgufWeights }> {
  const file = join(dir, `llama-20m-${type}.gguf`);
  writeLlamaGguf(file, { ...SHAPE, type });
  const spec = importGguf(file);
  const weights = GgufWeights.load(file, compileSpec(spec, 'imported.infer').program!.params);
  return { program: compileSpec(spec, 'imported.infer', { weightTypes: weights.types() }).program!, weights };
}

async function profile(gpu: GPUDevice, dir: string): Promise<void> {
  const rows: { type: string; prompt: number; wallMs: number; kernelsMs: number; byKind: Record<string, { ms: number; dispatches: number }> }[] = [];
  for (const type of TYPES) {
    const { program, weights } = await model(type, dir);
    const plain = await WebGpuEngine.create({ device: gpu, program, backend: wgslBackend, weights });
    const prof = await WebGpuEngine.create({ device: gpu, program, backend: wgslBackend, weights, profile: true, shareWeightsWith: plain });
    for (const n of PROMPTS) {
      const p = prompt(n);
      await timed(plain, p); await timed(prof, p);
      let wallMs = Infinity;
      const best = new Float64Array(program.steps.length).fill(Infinity);
      for (let r = 0; r < Math.min(ROUNDS, 3); r++) {
        log(`${type} prompt ${n} round ${r + 1}`);
        wallMs = Math.min(wallMs, (await timed(plain, p)).prefillMs);
        prof.reset(); prof.profile(true);
        await prof.forwardGreedy([{ seq: prof.kv.join(), tokens: p }]);
        prof.profile()!.forEach((s, i) => { best[i] = Math.min(best[i], s.ns / 1e6); });
      }
      const byKind: Record<string, { ms: number; dispatches: number }> = {};
      program.steps.forEach((s, i) => {
        const k = kindOf(program, s.kernel);
        byKind[k] ??= { ms: 0, dispatches: 0 };
        byKind[k].ms += best[i]; byKind[k].dispatches++;
      });
      rows.push({ type, prompt: n, wallMs, kernelsMs: best.reduce((a, x) => a + x, 0), byKind });
    }
    plain.dispose(); prof.dispose();
  }
  const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.byKind)))];
  const md = [
    '# Prefill profile: llama-20m shape on WebGPU (GPU ms per prompt by kernel kind)',
    '',
    `Timestamp queries around every dispatch; best of ${Math.min(ROUNDS, 3)} rounds per step. Load average at the end: ${loadavg()[0].toFixed(2)} (2 cores).`,
    '',
    `| kernel | ${rows.map((r) => `${r.type} ${r.prompt} tok`).join(' | ')} |`,
    `|---|${rows.map(() => '---:').join('|')}|`,
    ...kinds.map((k) => `| ${k} | ${rows.map((r) => r.byKind[k] ? `${r.byKind[k].ms.toFixed(1)} (${r.byKind[k].dispatches})` : '-').join(' | ')} |`),
    `| **sum of kernels** | ${rows.map((r) => r.kernelsMs.toFixed(1)).join(' | ')} |`,
    `| **wall (unprofiled)** | ${rows.map((r) => r.wallMs.toFixed(1)).join(' | ')} |`,
  ].join('\n');
  writeResults('prefill', { load: loadavg()[0], rows }, md);
}

async function ab(gpu: GPUDevice, dir: string, baseDir: string): Promise<void> {
  const base = (await import(pathToFileURL(resolve(baseDir, 'backends/wgsl/render.ts')).href) as { wgslBackend: Backend }).wgslBackend;
  const rows: { type: string; prompt: number; prefill: number[]; decode: number[]; baseMs: number; newMs: number; baseBest: number; newBest: number; baseDecodeBest: number; newDecodeBest: number }[] = [];
  const load0 = loadavg()[0];
  for (const type of TYPES) {
    const { program, weights } = await model(type, dir);
    const eNew = await WebGpuEngine.create({ device: gpu, program, backend: wgslBackend, weights, maxSequences: SEQS });
    const eBase = await WebGpuEngine.create({ device: gpu, program, backend: base, weights, shareWeightsWith: eNew, maxSequences: SEQS });
    for (const n of PROMPTS) {
      const p = prompt(n);
      await timed(eBase, p); await timed(eNew, p);
      const row = { type, prompt: n, prefill: [] as number[], decode: [] as number[], baseMs: 0, newMs: 0, baseBest: 0, newBest: 0, baseDecodeBest: Infinity, newDecodeBest: Infinity };
      const bs: number[] = [], ns: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which goes first, so a drift within a round favours neither.
        const [a, b] = r % 2 ? [await timed(eNew, p), await timed(eBase, p)].reverse() : [await timed(eBase, p), await timed(eNew, p)];
        row.prefill.push(a.prefillMs / b.prefillMs); row.decode.push(a.decodeMs / b.decodeMs);
        bs.push(a.prefillMs); ns.push(b.prefillMs);
        row.baseDecodeBest = Math.min(row.baseDecodeBest, a.decodeMs); row.newDecodeBest = Math.min(row.newDecodeBest, b.decodeMs);
        log(`${type} prompt ${n} round ${r + 1}: prefill base ${a.prefillMs.toFixed(0)} ms, new ${b.prefillMs.toFixed(0)} ms; decode base ${a.decodeMs.toFixed(1)}, new ${b.decodeMs.toFixed(1)} ms/step`);
      }
      row.baseMs = median(bs); row.newMs = median(ns); row.baseBest = Math.min(...bs); row.newBest = Math.min(...ns);
      rows.push(row);
    }
    eBase.dispose(); eNew.dispose();
  }
  const md = [
    '# Prefill and decode: this checkout\'s WGSL kernels against a base commit\'s (same Program, device, weights)',
    '',
    `llama-20m shape, random GGUF weights, ${SEQS} sequence(s) (prompt = tokens per sequence); ${ROUNDS} alternating rounds, each a prefill then ${DECODE} decode steps per kernel set.`,
    `Speed-up = base time / new time per round (median, min..max), and best base time / best new time (the least disturbed rounds). Load average: ${load0.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end (2 cores).`,
    '',
    '| weights | prompt | base prefill ms (median; best) | new prefill ms (median; best) | prefill speed-up: median (min..max) | best / best | decode ms/step base; new (best) | decode speed-up: median (min..max) | best / best |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.type} | ${r.prompt} | ${r.baseMs.toFixed(0)}; ${r.baseBest.toFixed(0)} | ${r.newMs.toFixed(0)}; ${r.newBest.toFixed(0)} | ${median(r.prefill).toFixed(2)}x (${Math.min(...r.prefill).toFixed(2)}..${Math.max(...r.prefill).toFixed(2)}) | ${(r.baseBest / r.newBest).toFixed(2)}x | ${r.baseDecodeBest.toFixed(1)}; ${r.newDecodeBest.toFixed(1)} | ${median(r.decode).toFixed(2)}x (${Math.min(...r.decode).toFixed(2)}..${Math.max(...r.decode).toFixed(2)}) | ${(r.baseDecodeBest / r.newDecodeBest).toFixed(2)}x |`),
  ].join('\n');
  writeResults(SEQS === 1 ? 'prefill-ab' : `prefill-ab-x${SEQS}`, { sequences: SEQS, rounds: ROUNDS, load: [load0, loadavg()[0]], rows }, md);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'infer-bench-prefill-'));
  const gpu = await createGpuDevice();
  try {
    log(`adapter features: ${[...gpu.features].join(', ')}`);
    await (process.env.INFER_BASE ? ab(gpu, dir, process.env.INFER_BASE) : profile(gpu, dir));
  } finally {
    gpu.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench('prefill', main);
