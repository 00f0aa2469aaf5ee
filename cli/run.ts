// `infer run`: compile, pick weights and an engine, generate, and report.
// With --json the only thing on stdout is one JSON object; everything a person
// reads (progress, notices, the stats table) goes to stderr.
import type { Model } from '../dsl/index.ts';
import type { Graph } from '../compiler/ir/graph.ts';
import type { Program } from '../program/program.ts';
import { readFileSync } from 'node:fs';
import { generate } from '../runtime/engine.ts';
import { ENGINE_BACKENDS, openEngines } from './openEngine.ts';
import { generateBatch } from '../runtime/batchGenerate.ts';
import type { PoolOptions } from '../runtime/pagedEngine.ts';
import type { SamplingOptions, TokenLogprob } from '../runtime/sampling.ts';
import type { WeightSource } from '../program/weights.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import type { Io } from './main.ts';
import { formatMoeStats } from '../runtime/moeStats.ts';
import type { SpecFlags } from './speculative.ts';

export interface RunFlags extends SpecFlags {
  weights?: string; backend?: string; tokens?: string[]; 'batch-file'?: string; 'kv-pages'?: string; 'max-tokens'?: string; temperature?: string; 'top-k'?: string;
  'top-p'?: string; seed?: string; 'top-logprobs'?: string; 'ignore-eos'?: boolean; json?: boolean; 'no-fuse'?: string; 'f32-weights'?: boolean;
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

function parseTokens(text: string, vocab: number, where: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  const bad = parts.findIndex((s, i) => s === '' || !Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab);
  if (bad >= 0) throw new RunError(`${where}: '${parts[bad]}' is not a token id in 0..${vocab - 1} (give ids like 1,2,3)`);
  return ids;
}

/** The prompts: each --tokens, or one per non-empty line of --batch-file; default [1]. */
function parsePrompts(f: RunFlags, vocab: number): number[][] {
  if (f['batch-file'] !== undefined) {
    if (f.tokens?.length) throw new RunError('give prompts with --tokens or --batch-file, not both');
    let text: string;
    try { text = readFileSync(f['batch-file'], 'utf8'); } catch (e) { throw new RunError(`--batch-file ${f['batch-file']}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`); }
    const prompts = text.split('\n').map((l, i) => [l.trim(), i + 1] as const).filter(([l]) => l !== '' && !l.startsWith('#'))
      .map(([l, line]) => parseTokens(l, vocab, `${f['batch-file']}:${line}`));
    if (prompts.length === 0) throw new RunError(`--batch-file ${f['batch-file']} holds no prompt (one comma-separated prompt per line)`);
    return prompts;
  }
  return (f.tokens?.length ? f.tokens : ['1']).map((t, i) => parseTokens(t, vocab, f.tokens && f.tokens.length > 1 ? `--tokens #${i + 1}` : '--tokens'));
}

/** The weights a program binds: seeded random, or a GGUF / safetensors file given by `flag`. */
export async function loadWeights(program: Program, file: string | undefined, flag: string, io: Io, json: boolean): Promise<WeightSource> {
  const m = program.model;
  if (m.weights.binding === 'gguf') {
    if (!file) throw new RunError(`${m.name} binds GGUF weights ('weights gguf'): give the model file with ${flag} FILE.gguf (or a Hugging Face llama FILE.safetensors)`);
    const { loadWeightFile } = await import('./weights.ts');
    return loadWeightFile(file, program, io, json);
  }
  if (file) io.err(`note: ${flag} ${file} ignored: ${m.name} binds random(seed = ${m.weights.seed}) weights (write 'weights gguf' in the spec to load a file)\n`);
  return new RandomWeights(program.params, m.weights.seed);
}

export async function runCommand(c: { program: Program; graph: Graph; ast?: Model | null }, f: RunFlags, io: Io): Promise<number> {
  const { program, graph } = c;
  const m = program.model;
  const backend = f.backend ?? 'webgpu';
  if (backend !== 'webgpu' && backend !== 'cpu') throw new RunError(`unknown backend '${backend}': use ${ENGINE_BACKENDS.join(' or ')}`);
  const maxTokens = num('max-tokens', f['max-tokens'], 32, true, 0);
  const sampling: SamplingOptions = {
    temperature: num('temperature', f.temperature, 0, false, 0),
    topK: num('top-k', f['top-k'], 0, true, 0),
    topP: num('top-p', f['top-p'], 1, false, 0),
    seed: num('seed', f.seed, 0, true, 0),
  };
  if (sampling.topP === 0 || sampling.topP! > 1) throw new RunError(`--top-p needs a number in (0, 1], got '${f['top-p']}'`);
  const topLogprobs = num('top-logprobs', f['top-logprobs'], 0, true, 0);
  const prompts = parsePrompts(f, m.vocab);
  const pool: PoolOptions = {
    maxSequences: Math.max(prompts.length === 1 ? 1 : 2, Math.min(prompts.length, 64)),
    ...(f['kv-pages'] !== undefined ? { kvPages: num('kv-pages', f['kv-pages'], 0, true, 1) } : {}),
  };

  // Speculative decoding when the spec's `speculative` section or a flag asks for it (cli/speculative.ts).
  const { specPlanFor, runSpeculative } = await import('./speculative.ts');
  const plan = specPlanFor(c, f);
  const weights = await loadWeights(program, f.weights, '--weights', io, f.json ?? false);
  if (plan) return runSpeculative({ target: c, plan, flags: f, io, backend, sampling, prompts, pool, maxTokens, weights, topLogprobs });

  const say = (t: string) => { if (!f.json) io.err(t); };
  say(`${m.name}: ${program.params.length} params, ${program.kernels.length} kernels, ${program.steps.length} dispatches per token; backend ${backend}\n`);
  const { engines: [engine], close, device } = await openEngines(backend, [{ program, graph, weights, moeStats: true }], pool);
  try {
    if (device) say(`device: ${device}\n`);
    const options = { maxTokens, sampling, ignoreEos: f['ignore-eos'] ?? false, topLogprobs };
    const s = () => engine.stats();
    if (prompts.length === 1) {
      const result = await generate(engine, prompts[0], options);
      // KV figures at the end of generation, before the sequence is released.
      const moe = engine.moeStats?.() ?? null;
      const stats = { ...result.stats, setup_ms: s().setupMs, bytes_allocated: s().bytesAllocated, activation_bytes: s().activationBytes ?? 0, kv: engine.kvStats(), ...(moe ? { moe } : {}) };
      if (result.notice) io.err(`note: ${result.notice}\n`);
      if (f.json) {
        io.out(JSON.stringify({ tokens: result.tokens, top_logprobs: result.topLogprobs, stats, ...(result.notice ? { notice: result.notice } : {}) }) + '\n');
      } else {
        io.out(result.tokens.join(' ') + '\n');
        if (topLogprobs > 0) io.out(logprobTable(result.tokens, result.topLogprobs));
        io.err(statsTable(flatten({ ...stats, moe: undefined })));
        if (moe) io.err(formatMoeStats(moe));
      }
    } else {
      let peak = engine.kvStats();
      const r = await generateBatch(engine, prompts, { ...options, onToken: () => { const k = engine.kvStats(); if (k.pages_used >= peak.pages_used) peak = k; } });
      const moe = engine.moeStats?.() ?? null;
      const stats = { ...r.stats, dispatches_per_step: s().dispatchesPerForward, setup_ms: s().setupMs, bytes_allocated: s().bytesAllocated, activation_bytes: s().activationBytes ?? 0, kv: peak, ...(moe ? { moe } : {}) };
      if (f.json) {
        io.out(JSON.stringify({ sequences: r.sequences.map((q) => ({ tokens: q.tokens, top_logprobs: q.topLogprobs, stop_reason: q.stop_reason })), stats }) + '\n');
      } else {
        r.sequences.forEach((q, i) => {
          io.out(`[${i}] ${q.tokens.join(' ')}\n`);
          if (topLogprobs > 0) io.out(logprobTable(q.tokens, q.topLogprobs));
        });
        io.err(statsTable(flatten({ ...stats, moe: undefined })));
        if (moe) io.err(formatMoeStats(moe));
      }
    }
  } finally {
    close();
  }
  return 0;
}

/** Nested stats (kv: {...}) as kv.page_size rows for the table. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object') Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[prefix + k] = v as number | string;
  }
  return out;
}

export function logprobTable(tokens: readonly number[], logprobs: readonly TokenLogprob[][]): string {
  return tokens.map((id, i) => `#${i} ${id}: ` + logprobs[i].map((t) => `${t.id}(${t.logprob.toFixed(4)})`).join(' ')).join('\n') + '\n';

}

function statsTable(s: Record<string, number | string>): string {
  const rows = Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
