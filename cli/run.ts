// `infer run`: compile, pick weights and an engine, generate, and report.
// With --json the only thing on stdout is one JSON object; everything a person
// reads (progress, notices, the stats table) goes to stderr.
import type { Model } from '../dsl/index.ts';
import type { Graph } from '../compiler/ir/graph.ts';
import type { Program } from '../program/program.ts';
import { readFileSync } from 'node:fs';
import { generate } from '../runtime/engine.ts';
import { ENGINE_BACKENDS, isEngineBackend, openEngines, type EngineBackendName } from './openEngine.ts';
import { generateBatch } from '../runtime/batchGenerate.ts';
import type { PoolOptions } from '../runtime/pagedEngine.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';
import type { WeightSource } from '../program/weights.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import type { Io } from './main.ts';
import { formatMoeStats } from '../runtime/moeStats.ts';
import type { SpecFlags } from './speculative.ts';
import { MAX_SEED, parseDecimal, parseInteger, parseTokenIds } from './args.ts';
import { interruptOnSigint, paramSummary, printReport, type SeqOutcome } from './outcome.ts';
import { decodeText, encodePrompt, readTextFile, textStreamer, tokenizerForRun } from './text.ts';
import type { Tokenizer } from '../runtime/tokenizer/index.ts';

export interface RunFlags extends SpecFlags {
  weights?: string; backend?: string; tokens?: string[]; 'batch-file'?: string; 'kv-pages'?: string; 'max-tokens'?: string; temperature?: string; 'top-k'?: string;
  'top-p'?: string; seed?: string; 'top-logprobs'?: string; 'ignore-eos'?: boolean; json?: boolean; 'no-fuse'?: string; 'f32-weights'?: boolean;
  verbose?: boolean; prompt?: string[]; 'prompt-file'?: string;
}

export class RunError extends Error {}

/** The prompts: each --tokens, or one per non-empty line of --batch-file; default [1]. */
function parsePrompts(f: RunFlags, vocab: number): number[][] {
  if (f['batch-file'] !== undefined) {
    if (f.tokens?.length) throw new RunError('give prompts with --tokens or --batch-file, not both');
    let text: string;
    try { text = readFileSync(f['batch-file'], 'utf8'); } catch (e) { throw new RunError(`--batch-file ${f['batch-file']}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`); }
    const prompts = text.split('\n').map((l, i) => [l.trim(), i + 1] as const).filter(([l]) => l !== '' && !l.startsWith('#'))
      .map(([l, line]) => parseTokenIds(l, vocab, `${f['batch-file']}:${line}`));
    if (prompts.length === 0) throw new RunError(`--batch-file ${f['batch-file']} holds no prompt (one comma-separated prompt per line)`);
    return prompts;
  }
  return (f.tokens?.length ? f.tokens : ['1']).map((t, i) => parseTokenIds(t, vocab, f.tokens && f.tokens.length > 1 ? `--tokens #${i + 1}` : '--tokens'));
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

/** The engine backend and sampling flags `run` and `chat` share, each checked. */
export function engineAndSampling(f: { backend?: string; temperature?: string; 'top-k'?: string; 'top-p'?: string; seed?: string }): { backend: EngineBackendName; sampling: SamplingOptions } {
  const backend = f.backend ?? 'webgpu';
  if (!isEngineBackend(backend)) throw new RunError(`unknown backend '${backend}': use ${ENGINE_BACKENDS.join(', ')}`);
  const sampling: SamplingOptions = {
    temperature: parseDecimal('temperature', f.temperature, 0, 0),
    topK: parseInteger('top-k', f['top-k'], 0, 0),
    topP: parseDecimal('top-p', f['top-p'], 1, 0),
    seed: parseInteger('seed', f.seed, 0, 0, MAX_SEED),
  };
  if (sampling.topP === 0 || sampling.topP! > 1) throw new RunError(`--top-p needs a number in (0, 1], got '${f['top-p']}'`);
  return { backend, sampling };
}

export async function runCommand(c: { program: Program; graph: Graph; ast?: Model | null }, f: RunFlags, io: Io): Promise<number> {
  const { program, graph } = c;
  const m = program.model;
  const { backend, sampling } = engineAndSampling(f);
  const maxTokens = parseInteger('max-tokens', f['max-tokens'], 32, 0);
  const topLogprobs = parseInteger('top-logprobs', f['top-logprobs'], 0, 0);
  // Text prompts (--prompt, --prompt-file) go through the weight file's tokenizer; ids stay ids.
  const tok = textTokenizer(f, m.name, m.vocab);
  const prompts = tok ? textPrompts(f, tok) : parsePrompts(f, m.vocab);
  const pool: PoolOptions = {
    maxSequences: Math.max(prompts.length === 1 ? 1 : 2, Math.min(prompts.length, 64)),
    ...(f['kv-pages'] !== undefined ? { kvPages: parseInteger('kv-pages', f['kv-pages'], 0, 1) } : {}),
  };

  // Speculative decoding when the spec's `speculative` section or a flag asks for it (cli/speculative.ts).
  const { specPlanFor, runSpeculative } = await import('./speculative.ts');
  const plan = specPlanFor(c, f);
  const weights = await loadWeights(program, f.weights, '--weights', io, f.json ?? false);
  // From here on Ctrl-C stops generation and the run reports what it has (cli/outcome.ts).
  const interrupt = interruptOnSigint(io);
  try {
    const text = tok ? (ids: readonly number[]) => decodeText(tok, ids) : undefined;
    if (plan) return await runSpeculative({ target: c, plan, flags: f, io, backend, sampling, prompts, pool, maxTokens, weights, topLogprobs, signal: interrupt.signal, text, ...(tok ? { stopIds: tok.eog } : {}) });
    return await runPlain({ program, graph }, f, io, { backend, sampling, prompts, pool, maxTokens, weights, topLogprobs, signal: interrupt.signal, tokenizer: tok });
  } finally {
    interrupt.dispose();
  }
}

interface PlainRun {
  backend: EngineBackendName; sampling: SamplingOptions; prompts: number[][]; pool: PoolOptions; maxTokens: number;
  weights: WeightSource; topLogprobs: number; signal: AbortSignal;
  /** Set when the prompts were text: output is text too, and the tokenizer's end-of-generation ids stop. */
  tokenizer?: Tokenizer | null;
}

/** The tokenizer when the prompts are text; null for --tokens / --batch-file. */
function textTokenizer(f: RunFlags, model: string, vocab: number): Tokenizer | null {
  if (!f.prompt?.length && f['prompt-file'] === undefined) return null;
  if (f.tokens?.length || f['batch-file'] !== undefined) throw new RunError('give prompts as text (--prompt, --prompt-file) or as ids (--tokens, --batch-file), not both');
  if (f.prompt?.length && f['prompt-file'] !== undefined) throw new RunError('give prompts with --prompt or --prompt-file, not both');
  const { tokenizer, source } = tokenizerForRun(f.weights, f.prompt?.length ? '--prompt' : '--prompt-file', model);
  if (tokenizer.vocabSize > vocab) throw new RunError(`the tokenizer of ${source} has ${tokenizer.vocabSize} tokens but ${model}'s vocabulary is ${vocab}`);
  return tokenizer;
}

function textPrompts(f: RunFlags, tok: Tokenizer): number[][] {
  const texts = f['prompt-file'] !== undefined ? readTextFile(f['prompt-file'], '--prompt-file') : f.prompt!;
  return texts.map((t) => encodePrompt(tok, t));
}

async function runPlain({ program, graph }: { program: Program; graph: Graph }, f: RunFlags, io: Io, r: PlainRun): Promise<number> {
  const m = program.model;
  const say = (t: string) => { if (!f.json) io.err(t); };
  say(`${m.name}: ${paramSummary(program.params)}; backend ${r.backend}\n`);
  if (f.verbose) say(`${program.kernels.length} kernels, ${program.steps.length} dispatches per token\n`);
  const { engines: [engine], close, device } = await openEngines(r.backend, [{ program, graph, weights: r.weights, moeStats: true }], r.pool);
  try {
    if (device && f.verbose) say(`device: ${device}\n`);
    const tok = r.tokenizer ?? null;
    const options = { maxTokens: r.maxTokens, sampling: r.sampling, ignoreEos: f['ignore-eos'] ?? false, topLogprobs: r.topLogprobs, signal: r.signal, ...(tok ? { stopIds: tok.eog } : {}) };
    const s = () => engine.stats();
    const flags = { json: f.json, verbose: f.verbose, topLogprobs: r.topLogprobs, ...(tok ? { text: (ids: readonly number[]) => decodeText(tok, ids) } : {}) };
    if (r.prompts.length === 1) {
      // One prompt, plain text: tokens go to stdout as they come, so an interrupted run has shown them.
      const stream = !f.json && r.topLogprobs === 0;
      let shown = 0;
      // Text streams through the decoder (no character split across writes); ids space-separated.
      const streamer = tok ? textStreamer(tok, io.out) : null;
      const onToken = streamer ? (id: number) => streamer.push(id) : (id: number) => { io.out(`${shown++ ? ' ' : ''}${id}`); };
      const result = await generate(engine, r.prompts[0], { ...options, ...(stream ? { onToken } : {}) });
      if (stream) { streamer?.end(); io.out('\n'); }
      // KV figures at the end of generation, before the sequence is released.
      const moe = engine.moeStats?.() ?? null;
      const stats = { ...result.stats, setup_ms: s().setupMs, bytes_allocated: s().bytesAllocated, activation_bytes: s().activationBytes ?? 0, kv: engine.kvStats(), ...(moe ? { moe } : {}) };
      const seq: SeqOutcome = { tokens: result.tokens, topLogprobs: result.topLogprobs, stop: result.stats.stop_reason, ...(result.notice ? { message: result.notice } : {}) };
      return printReport({ sequences: [seq], stats, tables: moe ? formatMoeStats(moe) : '', single: true, streamed: stream }, flags, io);
    }
    let peak = engine.kvStats();
    const res = await generateBatch(engine, r.prompts, { ...options, onToken: () => { const k = engine.kvStats(); if (k.pages_used >= peak.pages_used) peak = k; } });
    const moe = engine.moeStats?.() ?? null;
    const stats = { ...res.stats, dispatches_per_step: s().dispatchesPerForward, setup_ms: s().setupMs, bytes_allocated: s().bytesAllocated, activation_bytes: s().activationBytes ?? 0, kv: peak, ...(moe ? { moe } : {}) };
    const seqs: SeqOutcome[] = res.sequences.map((q) => ({ tokens: q.tokens, topLogprobs: q.topLogprobs, stop: q.stop_reason, ...(q.message ? { message: q.message } : {}) }));
    return printReport({ sequences: seqs, stats, tables: moe ? formatMoeStats(moe) : '', single: false }, flags, io);
  } finally {
    close();
  }
}
