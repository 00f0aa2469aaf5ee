// What both engines share: the KV page pool's sequences, and the two ways in. A batch
// forward appends each item's tokens to its sequence and runs all of them as one
// step (one dispatch per kernel for the whole batch). The single-sequence `forward`
// keeps the original contract on a default sequence: positions continue the sequence,
// or restart inside it, which rolls it back (what speculative verification needs).
import type { ModelInfo } from '../program/model.ts';
import { pageBytesPerLayer, tokenBytesPerLayer } from '../program/kv.ts';
import type { Program } from '../program/program.ts';
import type { ForwardOptions } from './engine.ts';
import { buildBatchStep, type BatchItem, type BatchStep } from './kv/batchStep.ts';
import { KvSequences } from './kv/sequences.ts';
import { greedy } from './sampling.ts';

export class EngineInputError extends Error {}

/** KV memory as `infer run --json` reports it under stats.kv. */
export interface KvStats {
  readonly layout: 'contiguous' | 'paged';
  readonly dtype: string;
  readonly page_size: number;
  readonly pages_total: number;
  readonly pages_used: number;
  /** Bytes of the slots holding live tokens (every layer, K and V, scales included). */
  readonly bytes_used: number;
  /** Bytes of the pages those tokens occupy: bytes_reserved - bytes_used is the waste. */
  readonly bytes_reserved: number;
  /** The whole pool, allocated up front. */
  readonly bytes_pool: number;
}

export interface PoolOptions {
  /** Sequences one batch may hold (default: the program's kv.maxSequences). */
  readonly maxSequences?: number;
  /** Pages in the pool (default: enough for maxSequences full-length sequences). */
  readonly kvPages?: number;
}

export abstract class PagedEngine {
  readonly model: ModelInfo;
  readonly kv: KvSequences;
  readonly maxSequences: number;
  abstract readonly maxTokensPerForward: number;
  private defaultSeq: number | null = null;

  constructor(protected readonly program: Program, pool: PoolOptions = {}) {
    this.model = program.model;
    const k = program.kv;
    this.maxSequences = pool.maxSequences ?? k.maxSequences;
    if (!Number.isInteger(this.maxSequences) || this.maxSequences < 1) throw new EngineInputError(`max sequences must be an integer >= 1, got ${this.maxSequences}`);
    const pages = pool.kvPages ?? this.maxSequences * k.pagesPerSequence;
    this.kv = new KvSequences(pages, k.pageSize, k.window, program.model.maxContext);
  }

  /** Runs one laid-out step; returns logits rows [rowFrom, rowTo) of the step. */
  protected abstract execute(step: BatchStep, rowFrom: number, rowTo: number): Promise<Float32Array>;

  async forward(tokens: Int32Array, positions: Int32Array, options: ForwardOptions = {}): Promise<Float32Array> {
    const seq = this.sequenceAt(tokens, positions);
    return (await this.forwardBatch([{ seq, tokens }], options))[0];
  }

  /** The default sequence, rolled back to positions[0] (forward's contract: consecutive positions that continue it or restart inside it). */
  private sequenceAt(tokens: Int32Array, positions: Int32Array): number {
    const T = tokens.length;
    if (T === 0) throw new EngineInputError('forward needs at least one token');
    if (positions.length !== T) throw new EngineInputError('tokens and positions differ in length');
    if (this.defaultSeq === null || !this.kv.has(this.defaultSeq)) this.defaultSeq = this.kv.join();
    const seq = this.defaultSeq;
    for (let i = 1; i < T; i++) if (positions[i] !== positions[0] + i) throw new EngineInputError('positions of one forward must be consecutive');
    const len = this.kv.length(seq);
    if (positions[0] > len) throw new EngineInputError(`position ${positions[0]} leaves a gap: the sequence holds ${len} tokens`);
    if (positions[0] < 0) throw new EngineInputError(`position ${positions[0]} is negative`);
    if (positions[0] < len) this.kv.truncate(seq, positions[0]);
    return seq;
  }

  /**
   * Appends each item's tokens to its sequence and runs them as one step. Returns, per
   * item, its logits rows (rows 'all': [n, vocab]; 'last': [1, vocab]). On any error the
   * sequences are as they were.
   */
  async forwardBatch(items: readonly BatchItem[], options: ForwardOptions = {}): Promise<Float32Array[]> {
    const last = options.rows === 'last';
    return this.runStep(items, async (step, T) => {
      const from = last ? step.rows[0][1] - 1 : 0;
      const to = last ? step.rows[step.rows.length - 1][1] : T;
      const logits = await this.execute(step, from, to);
      const V = this.model.vocab;
      return step.rows.map(([a, b]) => logits.slice(((last ? b - 1 : a) - from) * V, (b - from) * V));
    });
  }

  /**
   * Like forwardBatch, but returns each item's greedy next token (runtime/sampling.ts
   * `greedy` of its last logits row) instead of logits. Engines that can pick it on the
   * device (ProgramRunner) read back one id per sequence rather than the rows.
   */
  async forwardGreedy(items: readonly BatchItem[]): Promise<number[]> {
    return (await this.forwardBatch(items, { rows: 'last' })).map(greedy);
  }

  /** forward() for one token stream, returning its greedy next token (generate's greedy path). */
  async forwardNext(tokens: Int32Array, positions: Int32Array): Promise<number> {
    return (await this.forwardGreedy([{ seq: this.sequenceAt(tokens, positions), tokens }]))[0];
  }

  /**
   * Checks a batch, lays it out and runs `run` on it. On any error the sequences are as
   * they were (the step's tokens are rolled back).
   */
  protected async runStep<R>(items: readonly BatchItem[], run: (step: BatchStep, tokens: number) => Promise<R>): Promise<R> {
    const m = this.model;
    if (items.length === 0) throw new EngineInputError('a batch needs at least one sequence');
    if (items.length > this.maxSequences) throw new EngineInputError(`a batch of ${items.length} sequences exceeds this engine's ${this.maxSequences}`);
    const T = items.reduce((a, it) => a + it.tokens.length, 0);
    if (T > this.maxTokensPerForward) throw new EngineInputError(`forward of ${T} tokens exceeds this engine's limit of ${this.maxTokensPerForward}`);
    // The kernels do not bounds-check ids; a bad one would read out of range.
    for (const it of items) for (let i = 0; i < it.tokens.length; i++) {
      const id = it.tokens[i];
      if (!Number.isInteger(id) || id < 0 || id >= m.vocab) throw new EngineInputError(`token id ${id} is outside the vocabulary of ${m.vocab}`);
    }
    const before = items.map((it) => this.kv.length(it.seq));
    const step = buildBatchStep(this.kv, items);
    try {
      return await run(step, T);
    } catch (e) {
      items.forEach((it, i) => { if (this.kv.has(it.seq)) this.kv.truncate(it.seq, before[i]); });
      throw e;
    }
  }

  /** Ends every sequence: the next forward starts afresh. */
  reset(): void {
    this.kv.freeAll();
    this.defaultSeq = null;
  }

  kvStats(): KvStats {
    const k = this.program.kv;
    const u = this.kv.usage();
    const L = this.model.layers;
    return {
      layout: k.layout, dtype: k.dtype, page_size: u.page_size, pages_total: u.pages_total, pages_used: u.pages_used,
      bytes_used: u.slots_used * tokenBytesPerLayer(k) * L, bytes_reserved: u.pages_used * pageBytesPerLayer(k) * L,
      bytes_pool: u.pages_total * pageBytesPerLayer(k) * L,
    };
  }
}
