// createModel behind every generated module: weights in, a ProgramRunner on the caller's
// GPUDevice, and a small typed surface over it: prefill (a fresh sequence), step (one more
// token), generate (an async iterator of tokens, with text when the weights carry a
// tokenizer) and dispose. Browser-safe: imports no node: module and never loads Dawn.
import type { Program } from '../../program/program.ts';
import type { WeightSource } from '../../program/weights.ts';
import { Sampler, type SamplingOptions } from '../sampling.ts';
import { tokenizerFromGguf } from '../tokenizer/fromGguf.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { RandomWeights } from '../weights/random.ts';
import { WebGpuEngine } from '../webgpu/engine.ts';
import { EmbeddedBackend, type EmbeddedKernels } from './kernels.ts';
import { GgufBytesWeights, isGguf } from './ggufBytes.ts';
import { readWeightBytes, WeightsInputError, type LoadedWeights, type ProgressCallback, type WeightsInput, type WeightsLoader } from './weightsInput.ts';

export interface CreateModelOptions {
  /** Called as weight bytes arrive (and once a buffer or file is read). */
  readonly onProgress?: ProgressCallback;
  /** Most tokens one forward takes (default: the runner's choice for the device). */
  readonly maxTokensPerForward?: number;
  /** A tokenizer to use instead of the weight file's (or for weights that carry none). */
  readonly tokenizer?: Tokenizer;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 32). */
  readonly maxTokens?: number;
  /** Keep going past end-of-generation tokens. */
  readonly ignoreEos?: boolean;
  /** Stops between tokens; the iterator then ends with stop 'cancelled'. */
  readonly signal?: AbortSignal;
}

export interface GeneratedToken {
  readonly id: number;
  /** 0 for the first generated token. */
  readonly index: number;
  /** The text this token completes (present when the model has a tokenizer; may be ''). */
  readonly text?: string;
}

export type GenerateStop = 'max_tokens' | 'eos' | 'max_context' | 'cancelled';

export interface GenerateSummary {
  readonly tokens: readonly number[];
  readonly text?: string;
  readonly stop: GenerateStop;
  readonly promptTokens: number;
  readonly prefillMs: number;
  readonly decodeMs: number;
}

export interface InferModel<C> {
  readonly config: C;
  /** The weight file's tokenizer (or options.tokenizer); null when there is none. */
  readonly tokenizer: Tokenizer | null;
  /** Tokens in the current sequence (the next step's position). */
  readonly position: number;
  /** Starts a new sequence with `tokens`; resolves to the last token's logits [vocab]. */
  prefill(tokens: ArrayLike<number>): Promise<Float32Array>;
  /** Appends one token to the sequence; resolves to its logits [vocab]. */
  step(token: number): Promise<Float32Array>;
  /** Text (needs a tokenizer) or token ids in; tokens out as they are sampled. Returns a summary when done. */
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): AsyncGenerator<GeneratedToken, GenerateSummary, undefined>;
  dispose(): void;
}

export class ModelInputError extends Error {}

export interface ModelParts<C> {
  readonly config: C;
  readonly program: Program;
  readonly kernels: EmbeddedKernels;
}

/** Reads and binds the weights an input names for `program`. */
export async function loadWeights(program: Program, input: WeightsInput, onProgress?: ProgressCallback): Promise<LoadedWeights> {
  if (input === 'random') {
    const w = program.model.weights;
    if (w.binding !== 'random') throw new WeightsInputError(`model ${program.model.name} binds its weights from a file: pass a URL, Blob, buffer or weightsFromPath(...) instead of 'random'`);
    return { source: new RandomWeights(program.params, w.seed) };
  }
  if (isLoader(input)) return input.load(program.params, onProgress, program.model);
  const { name, bytes } = await readWeightBytes(input, onProgress);
  if (!isGguf(bytes)) throw new WeightsInputError(`${name}: not a GGUF file (no 'GGUF' magic at byte 0); in memory the runtime reads GGUF (safetensors files load in node through weightsFromPath)`);
  const g = new GgufBytesWeights(bytes, name, program.params);
  return { source: g, metadata: g.metadata };
}

const isLoader = (w: WeightsInput): w is WeightsLoader => typeof w === 'object' && 'kind' in w && (w as WeightsLoader).kind === 'loader';

export async function createModelFromParts<C>(parts: ModelParts<C>, device: GPUDevice, weights: WeightsInput, options: CreateModelOptions = {}): Promise<InferModel<C>> {
  const loaded = await loadWeights(parts.program, weights, options.onProgress);
  const tokenizer = options.tokenizer ?? (loaded.metadata?.has('tokenizer.ggml.model') ? tokenizerFromGguf(loaded.metadata) : null);
  const engine = await openEngine(parts, device, loaded.source, options);
  return new Model(parts.config, engine, tokenizer);
}

async function openEngine<C>(parts: ModelParts<C>, device: GPUDevice, weights: WeightSource, options: CreateModelOptions): Promise<WebGpuEngine> {
  // The device holds the weights once the engine is made (or nothing is held): drop the host side either way.
  try {
    return await WebGpuEngine.create({
      device, program: parts.program, backend: new EmbeddedBackend(parts.kernels), weights, maxSequences: 1,
      ...(options.maxTokensPerForward !== undefined ? { maxTokensPerForward: options.maxTokensPerForward } : {}),
    });
  } finally {
    weights.release?.();
  }
}

class Model<C> implements InferModel<C> {
  position = 0;
  private disposed = false;

  constructor(readonly config: C, private readonly engine: WebGpuEngine, readonly tokenizer: Tokenizer | null) {}

  async prefill(tokens: ArrayLike<number>): Promise<Float32Array> {
    const m = this.engine.model;
    this.live();
    if (tokens.length === 0) throw new ModelInputError('prefill needs at least one token');
    if (tokens.length > m.maxContext) throw new ModelInputError(`the prompt has ${tokens.length} tokens but the model's context holds ${m.maxContext}`);
    for (let i = 0; i < tokens.length; i++) this.checkToken(tokens[i]);
    this.engine.reset();
    this.position = 0;
    let last: Float32Array = new Float32Array(0);
    for (let start = 0; start < tokens.length; start += this.engine.maxTokensPerForward) {
      const end = Math.min(tokens.length, start + this.engine.maxTokensPerForward);
      last = await this.engine.forward(Int32Array.from({ length: end - start }, (_, i) => tokens[start + i]),
        Int32Array.from({ length: end - start }, (_, i) => start + i), { rows: 'last' });
      this.position = end;
    }
    return last;
  }

  async step(token: number): Promise<Float32Array> {
    this.live();
    this.checkToken(token);
    if (this.position === 0) throw new ModelInputError('step continues a sequence: call prefill first');
    if (this.position >= this.engine.model.maxContext) throw new ModelInputError(`the sequence fills the model's context of ${this.engine.model.maxContext} tokens`);
    const row = await this.engine.forward(Int32Array.of(token), Int32Array.of(this.position), { rows: 'last' });
    this.position++;
    return row;
  }

  async *generate(prompt: string | ArrayLike<number>, o: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerateSummary, undefined> {
    const ids = typeof prompt === 'string' ? this.encode(prompt) : Array.from(prompt);
    const maxTokens = o.maxTokens ?? 32;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new ModelInputError(`maxTokens must be an integer >= 0, got ${maxTokens}`);
    const sampler = new Sampler({ temperature: o.temperature ?? 0, topK: o.topK, topP: o.topP, seed: o.seed });
    const stopIds = new Set(this.tokenizer?.eog ?? []);
    if (this.engine.model.eos !== null) stopIds.add(this.engine.model.eos);
    const decoder = this.tokenizer?.createStreamDecoder();
    const tokens: number[] = [];
    let text = '';
    let stop: GenerateStop = 'max_tokens';
    const t0 = performance.now();
    let t1 = t0;
    let row = maxTokens > 0 ? await this.prefill(ids) : null;
    t1 = performance.now();
    while (row && tokens.length < maxTokens) {
      if (o.signal?.aborted) { stop = 'cancelled'; break; }
      const id = sampler.sample(row);
      tokens.push(id);
      const piece = decoder?.push(id);
      if (piece !== undefined) text += piece;
      yield { id, index: tokens.length - 1, ...(piece !== undefined ? { text: piece } : {}) };
      if (!o.ignoreEos && stopIds.has(id)) { stop = 'eos'; break; }
      if (tokens.length >= maxTokens) break;
      if (this.position >= this.engine.model.maxContext) { stop = 'max_context'; break; }
      row = await this.step(id);
    }
    if (decoder) text += decoder.flush();
    return { tokens, stop, promptTokens: ids.length, prefillMs: t1 - t0, decodeMs: performance.now() - t1, ...(decoder ? { text } : {}) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.dispose();
  }

  private encode(text: string): number[] {
    if (!this.tokenizer) throw new ModelInputError('a text prompt needs a tokenizer: these weights carry none (pass token ids, or options.tokenizer)');
    const ids = this.tokenizer.encode(text, { addSpecial: true, parseSpecial: true });
    if (ids.length === 0) throw new ModelInputError(`the prompt ${JSON.stringify(text)} encodes to no tokens`);
    return ids;
  }

  private checkToken(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.engine.model.vocab) throw new ModelInputError(`token ${id} is outside the vocabulary of ${this.engine.model.vocab}`);
  }

  private live(): void {
    if (this.disposed) throw new ModelInputError('the model was disposed');
  }
}
