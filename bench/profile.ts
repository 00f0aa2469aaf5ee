// Where decode time goes on WebGPU: GPU time per kernel kind (timestamp queries around every
// dispatch), fused vs unfused, for one spec. `npm run bench` includes it; alone:
//   node --import tsx bench/profile.ts [SPEC]
// Writes bench/results/profile.{md,json}. Profiled forwards run one compute pass per dispatch,
// so the per-kernel times add up to a little more than a normal forward's.
import type { Program } from '../program/program.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { generate } from '../runtime/engine.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { fusedAndUnfused, runBench, writeResults } from './report.ts';

const SPEC = process.argv[2] ?? process.env.INFER_BENCH_SPEC ?? 'examples/llama-20m.infer';
const DECODE = Number(process.env.INFER_BENCH_TOKENS ?? 24);
const log = (s: string) => process.stderr.write(s + '\n');

/** What a dispatch is, for grouping: the kernel kind plus its prologue/epilogue when fused. */
function kindOf(p: Program, key: string): string {
  const spec = p.kernels.find((k) => k.key === key)!.spec as { kind: string; prologue?: string; residual?: boolean };
  const extras = [spec.prologue && spec.prologue !== 'none' ? `+${spec.prologue}` : '', spec.residual ? '+residual' : ''].join('');
  return spec.kind + extras;
}

interface Side { ms: Map<string, number>; count: Map<string, number>; wallMs: number; profiledMs: number }

const ROUNDS = Number(process.env.INFER_BENCH_ROUNDS ?? 3);

/**
 * Both programs, measured in interleaved rounds (this machine's speed drifts between runs):
 * per step, the best per-token GPU time over the rounds; wall time, the best unprofiled round.
 */
async function measure(device: GPUDevice, programs: Record<string, Program>, weights: RandomWeights, prompt: number[]): Promise<Record<string, Side>> {
  const names = Object.keys(programs);
  const plain = new Map<string, WebGpuEngine>(), prof = new Map<string, WebGpuEngine>();
  for (const n of names) {
    plain.set(n, await WebGpuEngine.create({ device, program: programs[n], backend: wgslBackend, weights }));
    prof.set(n, await WebGpuEngine.create({ device, program: programs[n], backend: wgslBackend, weights, profile: true }));
    for (const e of [plain.get(n)!, prof.get(n)!]) await generate(e, prompt.slice(0, 4), { maxTokens: 2, ignoreEos: true });
  }
  const best = new Map(names.map((n) => [n, { wall: Infinity, steps: new Float64Array(programs[n].steps.length).fill(Infinity) }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      log(`  round ${r + 1}/${ROUNDS}: ${n}`);
      const w = await generate(plain.get(n)!, prompt, { maxTokens: DECODE + 1, ignoreEos: true });
      const b = best.get(n)!;
      b.wall = Math.min(b.wall, 1000 / w.stats.tokens_per_s);
      const e = prof.get(n)!;
      // Decode steps only: the profile restarts when the first token (the prompt's) is out.
      await generate(e, prompt, { maxTokens: DECODE + 1, ignoreEos: true, onToken: (_, i) => { if (i === 0) e.profile(true); } });
      e.profile()!.forEach((s, i) => { b.steps[i] = Math.min(b.steps[i], s.ns / 1e6 / Math.max(1, s.calls)); });
    }
  }
  for (const e of [...plain.values(), ...prof.values()]) e.dispose();
  const out: Record<string, Side> = {};
  for (const n of names) {
    const ms = new Map<string, number>(), count = new Map<string, number>();
    const b = best.get(n)!;
    programs[n].steps.forEach((s, i) => {
      const k = kindOf(programs[n], s.kernel);
      ms.set(k, (ms.get(k) ?? 0) + b.steps[i]);
      count.set(k, (count.get(k) ?? 0) + 1);
    });
    out[n] = { ms, count, wallMs: b.wall, profiledMs: b.steps.reduce((a, x) => a + x, 0) };
  }
  return out;
}

async function main(): Promise<void> {
  const { fused, unfused, model: m, seed } = fusedAndUnfused(SPEC);
  const weights = new RandomWeights(fused.graph.params, seed);
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % m.vocab);
  const device = await createGpuDevice();
  log(`profile: ${m.name}, prompt ${prompt.length}, ${DECODE} decode tokens`);
  const sides = await measure(device, { fused: fused.program, unfused: unfused.program }, weights, prompt);
  device.destroy();
  const kinds = [...new Set([...sides.fused.ms.keys(), ...sides.unfused.ms.keys()])]
    .sort((a, b) => Math.max(sides.fused.ms.get(b) ?? 0, sides.unfused.ms.get(b) ?? 0) - Math.max(sides.fused.ms.get(a) ?? 0, sides.unfused.ms.get(a) ?? 0));
  const cell = (s: Side, k: string) => s.ms.has(k) ? `${s.count.get(k)} | ${s.ms.get(k)!.toFixed(2)}` : '- | -';
  const md = [
    `# Decode profile: ${m.name} on WebGPU (GPU time per token by kernel kind)`,
    '',
    `Timestamp queries around every dispatch, ${DECODE} decode steps after a ${prompt.length}-token prompt; per step the best of ${ROUNDS} interleaved rounds.`,
    '',
    '| kernel | fused dispatches | fused ms/tok | unfused dispatches | unfused ms/tok |',
    '|---|---:|---:|---:|---:|',
    ...kinds.map((k) => `| ${k} | ${cell(sides.fused, k)} | ${cell(sides.unfused, k)} |`),
    `| **sum of kernels** | ${[...sides.fused.count.values()].reduce((a, b) => a + b, 0)} | ${sides.fused.profiledMs.toFixed(2)} | ${[...sides.unfused.count.values()].reduce((a, b) => a + b, 0)} | ${sides.unfused.profiledMs.toFixed(2)} |`,
    `| **wall time per token (unprofiled run)** | | ${sides.fused.wallMs.toFixed(2)} | | ${sides.unfused.wallMs.toFixed(2)} |`,
    '',
    'Wall time minus kernel time is what the host and the queue add per forward (submit, readback, dispatch overhead).',
  ].join('\n');
  const json = Object.fromEntries(Object.entries(sides).map(([k, s]) => [k, { wall_ms: s.wallMs, kernels_ms: s.profiledMs, by_kind: Object.fromEntries([...s.ms].map(([kk, v]) => [kk, { ms: v, dispatches: s.count.get(kk) }])) }]));
  writeResults('profile', { spec: SPEC, decode_tokens: DECODE, ...json }, md);
}

runBench('profile', main);
