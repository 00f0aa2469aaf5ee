// `infer run`: compile, pick weights and an engine, generate, and report.
// With --json the only thing on stdout is one JSON object; everything a person
// reads (progress, notices, the stats table) goes to stderr.
import type { Model } from '../dsl/index.ts';
import type { Graph } from './ir/graph.ts';
import type { Program } from './program.ts';
import { CpuEngine } from '../runtime/cpu/engine.ts';
import { generate, type Engine, type GenerateResult } from '../runtime/engine.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';
import type { WeightSource } from './ir/interpret.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import type { Io } from './cli.ts';
import type { SpecFlags } from './cliSpec.ts';

export interface RunFlags extends SpecFlags {
  weights?: string; backend?: string; tokens?: string; 'max-tokens'?: string; temperature?: string; 'top-k'?: string;
  'top-p'?: string; seed?: string; 'top-logprobs'?: string; 'ignore-eos'?: boolean; json?: boolean; 'no-fuse'?: string;
}

export class RunError extends Error {}

function num(flag: string, text: string | undefined, fallback: number, integer: boolean, min: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) {
    throw new RunError(`--${flag} needs ${integer ? 'an integer' : 'a number'} >= ${min}, got '${text}'`);
  }
  return v;
}

function parseTokens(text: string | undefined, vocab: number): number[] {
  if (text === undefined) return [1];
  const parts = text.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  const bad = parts.findIndex((s, i) => s === '' || !Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab);
  if (bad >= 0) throw new RunError(`--tokens: '${parts[bad]}' is not a token id in 0..${vocab - 1} (give ids like 1,2,3)`);
  return ids;
}

/** The weights a program binds: seeded random, or a GGUF file given by `flag`. */
export async function loadWeights(program: Program, file: string | undefined, flag: string, io: Io, json: boolean): Promise<WeightSource> {
  const m = program.model;
  if (m.weights.binding === 'gguf') {
    if (!file) throw new RunError(`${m.name} binds GGUF weights ('weights gguf'): give the model file with ${flag} FILE.gguf`);
    const { loadGgufWeights } = await import('./cliGguf.ts');
    return loadGgufWeights(file, program.params, io, json);
  }
  if (file) io.err(`note: ${flag} ${file} ignored: ${m.name} binds random(seed = ${m.weights.seed}) weights (write 'weights gguf' in the spec to load a file)\n`);
  return new RandomWeights(program.params, m.weights.seed);
}

/** Builds the engine the flags ask for; the caller disposes it. */
async function makeEngine(kind: string, program: Program, graph: Graph, weights: WeightSource): Promise<{ engine: Engine; close: () => void; device?: string }> {
  if (kind === 'cpu') { const e = new CpuEngine(graph, weights, program); return { engine: e, close: () => e.dispose() }; }
  const { openGpu, wgslBackend } = await import('./cliBackend.ts');
  const { WebGpuEngine } = await import('../runtime/webgpu/engine.ts');
  const gpu = await openGpu();
  try {
    const engine = await WebGpuEngine.create({ device: gpu.device, program, backend: await wgslBackend(), weights });
    return { engine, device: gpu.description, close: () => { engine.dispose(); gpu.close(); } };
  } catch (e) {
    gpu.close();
    throw e;
  }
}

export async function runCommand(c: { program: Program; graph: Graph; ast?: Model | null }, f: RunFlags, io: Io): Promise<number> {
  const { program, graph } = c;
  const m = program.model;
  const backend = f.backend ?? 'webgpu';
  if (backend !== 'webgpu' && backend !== 'cpu') throw new RunError(`unknown backend '${backend}': use webgpu or cpu`);
  const maxTokens = num('max-tokens', f['max-tokens'], 32, true, 0);
  const sampling: SamplingOptions = {
    temperature: num('temperature', f.temperature, 0, false, 0),
    topK: num('top-k', f['top-k'], 0, true, 0),
    topP: num('top-p', f['top-p'], 1, false, 0),
    seed: num('seed', f.seed, 0, true, 0),
  };
  if (sampling.topP === 0 || sampling.topP! > 1) throw new RunError(`--top-p needs a number in (0, 1], got '${f['top-p']}'`);
  const topLogprobs = num('top-logprobs', f['top-logprobs'], 0, true, 0);
  const prompt = parseTokens(f.tokens, m.vocab);

  // Speculative decoding when the spec's `speculative` section or a flag asks for it (compiler/cliSpec.ts).
  const { specPlanFor, runSpeculative } = await import('./cliSpec.ts');
  const plan = specPlanFor(c, f);
  const weights = await loadWeights(program, f.weights, '--weights', io, f.json ?? false);
  if (plan) return runSpeculative({ target: c, plan, flags: f, io, backend, sampling, prompt, maxTokens, weights, topLogprobs });

  const say = (t: string) => { if (!f.json) io.err(t); };
  say(`${m.name}: ${program.params.length} params, ${program.kernels.length} kernels, ${program.steps.length} dispatches per token; backend ${backend}\n`);
  const { engine, close, device } = await makeEngine(backend, program, graph, weights);
  let result: GenerateResult;
  try {
    if (device) say(`device: ${device}\n`);
    result = await generate(engine, prompt, { maxTokens, sampling, ignoreEos: f['ignore-eos'] ?? false, topLogprobs });
    const s = engine.stats();
    const stats = { ...result.stats, setup_ms: s.setupMs, bytes_allocated: s.bytesAllocated };
    if (result.notice) io.err(`note: ${result.notice}\n`);
    if (f.json) {
      io.out(JSON.stringify({ tokens: result.tokens, top_logprobs: result.topLogprobs, stats, ...(result.notice ? { notice: result.notice } : {}) }) + '\n');
    } else {
      io.out(result.tokens.join(' ') + '\n');
      if (topLogprobs > 0) io.out(logprobTable(result));
      io.err(statsTable(stats));
    }
  } finally {
    close();
  }
  return 0;
}

export function logprobTable(r: Pick<GenerateResult, 'tokens' | 'topLogprobs'>): string {
  return r.tokens.map((id, i) => `#${i} ${id}: ` + r.topLogprobs[i].map((t) => `${t.id}(${t.logprob.toFixed(4)})`).join(' ')).join('\n') + '\n';
}

function statsTable(s: Record<string, number | string>): string {
  const rows = Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
