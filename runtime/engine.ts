// The Engine interface both backends implement, and `generate`, the loop that
// drives any engine: one prefill forward over the prompt, then one decode forward
// per generated token, sampling on the host from the last logits row.
import type { ModelInfo } from '../program/model.ts';
import type { MoeStatsReport } from './moeStats.ts';
import { Sampler, topLogprobs as topN, type SamplingOptions, type TokenLogprob } from './sampling.ts';
import type { BatchItem } from './kv/batchStep.ts';
import type { KvSequences } from './kv/sequences.ts';
import type { KvStats } from './pagedEngine.ts';
import { cancelledMessage, stopForError, yieldToEvents, type StopReason } from './stop.ts';
import { KvPoolExhausted } from './kv/pagePool.ts';

export type { StopReason } from './stop.ts';

/** Which engine ran: the interpreter, or a ProgramRunner's device. */
export type EngineBackend = 'cpu' | 'webgpu' | 'cuda';

export interface EngineStats {
  readonly backend: EngineBackend;
  /** Forward calls since creation. */
  readonly forwards: number;
  /** Tokens processed by those forwards. */
  readonly tokens: number;
  /** Kernel dispatches issued (CPU: the Program steps the interpreter stands in for). */
  readonly dispatches: number;
  /** Dispatches of one forward: the Program's step count. */
  readonly dispatchesPerForward: number;
  /** Wall time of the last forward, readback included. */
  readonly lastForwardMs: number;
  /** One-off setup cost: weight generation/upload and kernel compilation. */
  readonly setupMs: number;
  /** Device bytes allocated (0 for the CPU engine). */
  readonly bytesAllocated: number;
  /** Of bytesAllocated: activation storage (shared arenas, compiler/planMemory.ts); absent on the CPU engine. */
  readonly activationBytes?: number;
}

export interface ForwardOptions {
  /** 'all' (default): logits for every token, [T, vocab]; 'last': only the last row, [1, vocab]. */
  readonly rows?: 'all' | 'last';
}

export interface Engine {
  readonly backend: EngineBackend;
  readonly model: ModelInfo;
  /** The most tokens one forward accepts (prefills longer than this are split). */
  readonly maxTokensPerForward: number;
  /** The most sequences one batch forward takes. */
  readonly maxSequences: number;
  /** The KV page pool's sequences: join (optionally sharing a prefix), truncate, free. */
  readonly kv: KvSequences;
  /**
   * Runs T tokens of the default sequence at consecutive positions that continue it (or
   * restart inside it, rolling it back), appending their K/V to the cache.
   */
  forward(tokens: Int32Array, positions: Int32Array, options?: ForwardOptions): Promise<Float32Array>;
  /** Appends each item's tokens to its sequence and runs the whole batch as one step. */
  forwardBatch(items: readonly BatchItem[], options?: ForwardOptions): Promise<Float32Array[]>;
  /** forwardBatch, returning each item's greedy next token instead of logits (picked on the device where the engine can). */
  forwardGreedy?(items: readonly BatchItem[]): Promise<number[]>;
  /** KV memory in use (stats.kv). */
  kvStats(): KvStats;
  /** Ends every sequence: the next forward starts a new one. */
  reset(): void;
  dispose(): void;
  stats(): EngineStats;
  /** Mixture-of-experts routing counts since creation, where the engine collects them (null: dense model or not collected). */
  moeStats?(): MoeStatsReport | null;
}

/** What `generate` needs: one sequence driven through `forward`. */
export type SingleSequenceEngine = Pick<Engine, 'backend' | 'model' | 'maxTokensPerForward' | 'forward' | 'reset' | 'stats'> & {
  /** forward's greedy next token without the logits (generate uses it for greedy sampling without logprobs). */
  forwardNext?(tokens: Int32Array, positions: Int32Array): Promise<number>;
};

export interface GenerateOptions {
  readonly maxTokens: number;
  readonly sampling?: SamplingOptions;
  /** Keep going past the model's end-of-sequence token. */
  readonly ignoreEos?: boolean;
  /** More ids that end generation like eos (a tokenizer's end-of-turn ids: <|eot_id|>, <|im_end|>). */
  readonly stopIds?: ReadonlySet<number>;
  /** Log-probabilities of the N most likely tokens at each generated position (temperature 1). */
  readonly topLogprobs?: number;
  readonly onToken?: (id: number, index: number) => void;
  /** Cancels generation between forwards; what was generated comes back with stop 'cancelled'. */
  readonly signal?: AbortSignal;
}

export interface GenerateStats {
  readonly backend: EngineBackend;
  readonly prompt_tokens: number;
  readonly generated_tokens: number;
  /** Wall time of the prompt's forward(s) and the first token's sampling. */
  readonly prefill_ms: number;
  /** Wall time of every later forward and its sampling. */
  readonly decode_ms: number;
  /** Decode forwards per second (the first token comes from prefill and is not counted). */
  readonly tokens_per_s: number;
  readonly prefill_tokens_per_s: number;
  readonly dispatches_per_token: number;
  readonly stop_reason: StopReason;
}

export interface GenerateResult {
  readonly tokens: number[];
  readonly topLogprobs: TokenLogprob[][];
  readonly stats: GenerateStats;
  /** Set when generation ended early (context or pool full, cancelled, a forward failed): why, in words. */
  readonly notice?: string;
}

export class GenerateError extends Error {}

const now = (): number => performance.now();

/**
 * Generates up to `maxTokens` tokens after `prompt` on a fresh sequence (the
 * engine is reset first). Stops at the model's eos token (included in the
 * output) unless ignoreEos, and when the next forward would fall outside the
 * model's context (so at most maxContext - prompt + 1 tokens come out).
 */
export async function generate(engine: SingleSequenceEngine, prompt: ArrayLike<number>, opts: GenerateOptions): Promise<GenerateResult> {
  const m = engine.model;
  const P = prompt.length;
  if (P === 0) throw new GenerateError('the prompt is empty: give at least one token');
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0) throw new GenerateError(`max tokens must be an integer >= 0, got ${opts.maxTokens}`);
  for (let i = 0; i < P; i++) {
    const id = prompt[i];
    if (!Number.isInteger(id) || id < 0 || id >= m.vocab) throw new GenerateError(`prompt token ${id} is outside the vocabulary of ${m.vocab}`);
  }
  if (P > m.maxContext) throw new GenerateError(`the prompt has ${P} tokens but the model's context holds ${m.maxContext}`);
  const sampler = new Sampler(opts.sampling);
  const nLog = opts.topLogprobs ?? 0;
  const tokens: number[] = [];
  const logprobs: TokenLogprob[][] = [];
  engine.reset();

  let stop: StopReason = 'max_tokens';
  let notice: string | undefined;
  const deviceGreedy = sampler.isGreedy && nLog === 0 && engine.forwardNext !== undefined;
  const take = (row: Float32Array): boolean => takeId(sampler.sample(row), row);
  const takeId = (id: number, row?: Float32Array): boolean => {
    tokens.push(id);
    logprobs.push(row ? topN(row, nLog) : []);
    opts.onToken?.(id, tokens.length - 1);
    if (!opts.ignoreEos && ((m.eos !== null && id === m.eos) || opts.stopIds?.has(id))) { stop = 'eos'; return false; }
    return true;
  };
  /** False (and stop 'cancelled') when the caller's signal has fired. */
  const live = async (): Promise<boolean> => {
    if (!opts.signal) return true;
    await yieldToEvents();
    if (!opts.signal.aborted) return true;
    stop = 'cancelled';
    notice = cancelledMessage(tokens.length);
    return false;
  };

  // A failing forward ends the run with what it produced: a full pool during prefill
  // means this prompt can never be held (the pool holds nothing else), later it is
  // 'kv_exhausted'; any other failure is 'error' with its message.
  const t0 = now();
  let t1 = t0;
  let decodeSteps = 0;
  try {
    // Prefill: the whole prompt in one forward when it fits the engine's per-forward limit.
    let going = opts.maxTokens > 0;
    if (going) {
      let last: Float32Array | undefined;
      for (let start = 0; start < P && going; start += engine.maxTokensPerForward) {
        const end = Math.min(P, start + engine.maxTokensPerForward);
        const ids = Int32Array.from({ length: end - start }, (_, i) => prompt[start + i]);
        const pos = Int32Array.from({ length: end - start }, (_, i) => start + i);
        going = await live();
        if (!going) break;
        try {
          last = await engine.forward(ids, pos, { rows: 'last' });
        } catch (e) {
          if (!(e instanceof KvPoolExhausted)) throw e;
          stop = 'prompt_too_large';
          notice = `the prompt's ${P} tokens do not fit the KV pool (${e.message})`;
          going = false;
        }
      }
      if (going) going = take(last!);
    }
    t1 = now();

    // Decode: one token per forward at the next position, until a stop rule fires.
    while (going && tokens.length < opts.maxTokens) {
      const pos = P + tokens.length - 1;
      if (pos >= m.maxContext) {
        stop = 'max_context';
        notice = `stopped after ${tokens.length} tokens: the next forward would run at position ${pos}, past the model's context of ${m.maxContext}`;
        break;
      }
      if (!(await live())) break;
      const ids = Int32Array.of(tokens[tokens.length - 1]), at = Int32Array.of(pos);
      // Greedy without logprobs: the engine picks the token (on the device, where it can) and no logits come back.
      if (deviceGreedy) { decodeSteps++; going = takeId(await engine.forwardNext!(ids, at)); continue; }
      const row = await engine.forward(ids, at, { rows: 'last' });
      decodeSteps++;
      going = take(row);
    }
  } catch (e) {
    if (t1 === t0) t1 = now();
    const s = stopForError(e);
    stop = s.stop;
    notice = `stopped after ${tokens.length} tokens: ${s.message}`;
  }
  const t2 = now();

  const decodeMs = t2 - t1;
  return {
    tokens,
    topLogprobs: logprobs,
    notice,
    stats: {
      backend: engine.backend,
      prompt_tokens: P,
      generated_tokens: tokens.length,
      prefill_ms: t1 - t0,
      decode_ms: decodeMs,
      tokens_per_s: decodeSteps > 0 ? decodeSteps / (decodeMs / 1000) : 0,
      prefill_tokens_per_s: tokens.length > 0 ? P / ((t1 - t0) / 1000) : 0,
      dispatches_per_token: engine.stats().dispatchesPerForward,
      stop_reason: stop,
    },
  };
}
