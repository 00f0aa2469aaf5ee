// Runs one GGUF file through llama.cpp (node-llama-cpp's prebuilt CPU build) and
// through infer, and measures how far apart they are.
//
// llama.cpp settings for an exact comparison (see ENVIRONMENT.md): no GPU, no
// flash attention, F32 K/V cache, one thread. Its sampler returns softmax
// probabilities (f32) over the whole vocabulary, which we turn into log-probs.
//
//   greedy:   llama.cpp's `evaluate` at temperature 0 (yieldEogToken, so an
//             end-of-sequence token does not silently stop it) vs infer's generate().
//   prefill:  the distribution after every token of prompt + greedy tokens, from one
//             controlledEvaluate batch vs one infer forward over the same tokens.
//   decode:   infer's per-step distributions during generate() (one token per forward,
//             through the KV cache) vs llama.cpp's at the same positions.
import { closeSync, openSync, writeSync } from 'node:fs';
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type Llama, type Token } from 'node-llama-cpp';
import { compileSpec } from '../../compiler/compile.ts';
import type { Graph } from '../../compiler/ir/graph.ts';
import type { Program } from '../../program/program.ts';
import { generate, type Engine } from '../../runtime/engine.ts';
import { logSoftmax } from '../../runtime/sampling.ts';
import { randomTensor } from '../../runtime/weights/random.ts';
import { writeLlamaGguf } from '../../runtime/weights/randomLlamaGguf.ts';
import type { TiedRouterCase } from './cases.ts';

let shared: Promise<Llama> | undefined;

/** One llama.cpp instance per test process (loading the addon takes about a second). */
export function llamaCpp(): Promise<Llama> {
  shared ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
  return shared;
}

export interface Run {
  /** Greedy continuation of the prompt. */
  readonly greedy: number[];
  /** Log-probabilities after each token of prompt + greedy[0 .. n-2] (the prefill path). */
  readonly prefill: Float64Array[];
}

export async function runLlamaCpp(path: string, vocab: number, prompt: readonly number[], n: number): Promise<Run> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const size = prompt.length + n;
  const ctx = await model.createContext({
    contextSize: size, batchSize: size, sequences: 1, threads: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  try {
    const seq = ctx.getSequence();
    const greedy: number[] = [];
    for await (const t of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      greedy.push(t as number);
      if (greedy.length === n) break;
    }
    await seq.clearHistory();
    const all = [...prompt, ...greedy.slice(0, -1)] as Token[];
    const out = await seq.controlledEvaluate(all.map((t): ControlledEvaluateInputItem => [t, { generateNext: { probabilities: true } }]));
    const prefill = out.map((r, i) => {
      const p = r?.next.probabilities;
      if (!p) throw new Error(`llama.cpp returned no distribution at position ${i}`);
      const row = new Float64Array(vocab).fill(-Infinity);
      for (const [id, prob] of p) row[id] = Math.log(prob);
      return row;
    });
    return { greedy, prefill };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

export interface InferRun extends Run {
  /** Log-probabilities at each generate() step (the decode path; step 0 is the prefill's last row). */
  readonly decode: Float64Array[];
}

export function compileImported(spec: string, weightTypes?: ReadonlyMap<string, string>): { graph: Graph; program: Program } {
  const c = compileSpec(spec, 'imported.infer', { weightTypes });
  if (c.diagnostics.length || !c.graph || !c.program) throw new Error(`the imported spec does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  return { graph: c.graph, program: c.program };
}

export async function runInfer(engine: Engine, prompt: readonly number[], n: number, sequence: readonly number[]): Promise<InferRun> {
  const V = engine.model.vocab;
  const g = await generate(engine, prompt, { maxTokens: n, ignoreEos: true, topLogprobs: V });
  const decode = g.topLogprobs.map((top) => {
    const row = new Float64Array(V);
    for (const t of top) row[t.id] = t.logprob;
    return row;
  });
  // The prefill path over llama.cpp's sequence (teacher forcing), in chunks the engine accepts.
  engine.reset();
  const prefill: Float64Array[] = [];
  for (let s = 0; s < sequence.length; s += engine.maxTokensPerForward) {
    const ids = sequence.slice(s, s + engine.maxTokensPerForward);
    const logits = await engine.forward(Int32Array.from(ids), Int32Array.from(ids, (_, i) => s + i));
    for (let r = 0; r < ids.length; r++) prefill.push(logSoftmax(logits.subarray(r * V, (r + 1) * V)));
  }
  return { greedy: g.tokens, prefill, decode };
}

export interface Tolerance { readonly abs: number; readonly rel: number }

/**
 * Over every entry where llama.cpp's f32 probability is representable (logprob > -69,
 * p > 1e-30): the largest |delta| and the largest delta / (abs + rel * |ref|), which
 * must stay <= 1.
 */
export function logprobDiff(ref: readonly Float64Array[], got: readonly Float64Array[], tol: Tolerance): { max: number; ratio: number; at: string } {
  if (ref.length !== got.length) throw new Error(`${ref.length} reference rows, ${got.length} rows`);
  let max = 0, ratio = 0, at = '';
  ref.forEach((r, i) => {
    for (let t = 0; t < r.length; t++) {
      if (!(r[t] > -69)) continue;
      const d = Math.abs(r[t] - got[i][t]);
      const q = d / (tol.abs + tol.rel * Math.abs(r[t]));
      if (!(d <= max)) max = d;
      if (!(q <= ratio)) { ratio = q; at = `position ${i}, token ${t} (llama.cpp ${r[t]}, infer ${got[i][t]})`; }
    }
  });
  return { max, ratio, at };
}

/**
 * How many leading greedy tokens agree; and the first position where llama.cpp's
 * top-2 log-probability gap is within the tolerance of both (a near-tie it allows to flip).
 */
export function greedyAgreement(ref: Run, got: readonly number[], promptLength: number, tol: Tolerance): { same: number; firstTie: number } {
  let same = 0;
  while (same < ref.greedy.length && got[same] === ref.greedy[same]) same++;
  let firstTie = ref.greedy.length;
  for (let i = 0; i < ref.greedy.length; i++) {
    const row = ref.prefill[promptLength - 1 + i];
    let a = -Infinity, b = -Infinity;
    for (const x of row) { if (x > a) { b = a; a = x; } else if (x > b) b = x; }
    if (a - b < 2 * tol.abs + tol.rel * (Math.abs(a) + Math.abs(b))) { firstTie = i; break; }
  }
  return { same, firstTie };
}

/**
 * writeLlamaGguf, then each layer's router (ffn_gate_inp, f32, expert e's column the
 * contiguous row e) overwritten in place with its columns copied as `c.copies` says.
 */
export function writeTiedRouterGguf(path: string, c: TiedRouterCase): void {
  if (c.type !== 'f32') throw new Error('tied routers are written into f32 files');
  const layout = writeLlamaGguf(path, c);
  const fd = openSync(path, 'r+');
  try {
    for (let l = 0; l < c.layers; l++) {
      const name = `blk.${l}.ffn_gate_inp`;
      const r = Float32Array.from(randomTensor(name, [c.dim, c.experts], c.seed));
      c.copies[l].forEach((from, e) => { if (from !== e) r.copyWithin(e * c.dim, from * c.dim, (from + 1) * c.dim); });
      const t = layout.tensors.find((x) => x.name === `${name}.weight`);
      if (!t || t.bytes !== r.byteLength) throw new Error(`${name}: not an f32 [${c.dim}, ${c.experts}] tensor in the file`);
      writeSync(fd, new Uint8Array(r.buffer, r.byteOffset, r.byteLength), 0, r.byteLength, t.fileOffset);
    }
  } finally {
    closeSync(fd);
  }
}
