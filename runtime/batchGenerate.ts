// Continuous batching: requests join between steps, and every step is one batched
// forward over all active sequences (new prompts prefill in the same step as the
// others decode). A prompt that shares a prefix with a live sequence reuses its KV
// pages. When the pool cannot hold a step, new prompts wait; if decoding alone
// cannot fit, the most recently admitted sequence stops with stop_reason
// 'kv_exhausted' (its pages free the others) rather than failing the whole batch.
// Nothing ends the whole batch: a prompt that can never be held (over the context,
// or over the whole pool) stops alone with 'prompt_too_large', a failing forward
// stops the sequences it carried with 'error', and a fired AbortSignal stops every
// sequence with 'cancelled'; each keeps the tokens it generated. A prompt longer
// than one forward takes prefills in chunks over several steps.
import type { Engine, EngineBackend, GenerateOptions } from './engine.ts';
import { cancelledMessage, stopForError, yieldToEvents, type StopReason } from './stop.ts';
import type { BatchItem } from './kv/batchStep.ts';
import { KvPoolExhausted } from './kv/sequences.ts';
import { Sampler, topLogprobs as topN, type TokenLogprob } from './sampling.ts';

export type BatchStopReason = StopReason;

export interface SequenceResult {
  readonly tokens: number[];
  readonly topLogprobs: TokenLogprob[][];
  readonly stop_reason: BatchStopReason;
  /** Why the sequence ended early, in words (absent for max_tokens and eos). */
  readonly message?: string;
  /** Prompt tokens whose KV came from another sequence's pages. */
  readonly prefix_reused: number;
}

export interface BatchStats {
  readonly backend: EngineBackend;
  readonly sequences: number;
  readonly prompt_tokens: number;
  readonly generated_tokens: number;
  readonly prefix_reused_tokens: number;
  /** Batched forwards (each one dispatch per kernel for the whole batch). */
  readonly steps: number;
  readonly wall_ms: number;
  /** Generated tokens per second over the whole run, all sequences together. */
  readonly tokens_per_s: number;
  readonly max_batch: number;
}

interface Request {
  readonly id: number;
  readonly prompt: readonly number[];
  seq: number | null;
  /** Tokens still to feed: the prompt (less any shared prefix) at first, then the last sample. */
  pending: number[];
  readonly out: number[];
  readonly logprobs: TokenLogprob[][];
  readonly sampler: Sampler;
  stop: BatchStopReason | null;
  message?: string;
  reused: number;
}

export class BatchGenerator {
  private readonly requests: Request[] = [];
  private steps = 0;
  private maxBatch = 0;

  constructor(private readonly engine: Engine, private readonly opts: GenerateOptions) {}

  /** Queues a prompt; it joins the batch at the next step with room. Returns its index. */
  add(prompt: readonly number[]): number {
    const m = this.engine.model;
    if (prompt.length === 0) throw new Error('a prompt is empty: give at least one token');
    for (const id of prompt) if (!Number.isInteger(id) || id < 0 || id >= m.vocab) throw new Error(`prompt token ${id} is outside the vocabulary of ${m.vocab}`);
    const id = this.requests.length;
    const seed = (this.opts.sampling?.seed ?? 0) + id;
    const r: Request = { id, prompt, seq: null, pending: [...prompt], out: [], logprobs: [], sampler: new Sampler({ ...this.opts.sampling, seed }), stop: this.opts.maxTokens > 0 ? null : 'max_tokens', reused: 0 };
    // Too long for the context: this prompt alone can never run; the others still do.
    if (r.stop === null && prompt.length > m.maxContext) this.end(r, 'prompt_too_large', `the prompt has ${prompt.length} tokens but the model's context holds ${m.maxContext}`);
    this.requests.push(r);
    return id;
  }

  get done(): boolean { return this.requests.every((r) => r.stop !== null); }

  /** One batched forward over every active sequence, plus admissions that fit. */
  async step(): Promise<void> {
    const kv = this.engine.kv;
    if (this.opts.signal) {
      await yieldToEvents();
      if (this.opts.signal.aborted) {
        for (const r of this.requests) if (r.stop === null) this.end(r, 'cancelled', cancelledMessage(r.out.length));
        return;
      }
    }
    const running = this.requests.filter((r) => r.stop === null && r.seq !== null);
    const waiting = this.requests.filter((r) => r.stop === null && r.seq === null);
    // Tokens each sequence feeds this step: decoders one, then prompts still prefilling
    // as many as the per-forward budget leaves.
    const feed = new Map<Request, number>();
    let budget = this.engine.maxTokensPerForward;
    for (const r of [...running].sort((a, b) => a.pending.length - b.pending.length)) {
      const n = Math.min(r.pending.length, budget);
      if (n > 0) { feed.set(r, n); budget -= n; }
    }
    const admitted: Request[] = [];
    for (const r of waiting) {
      if (running.length + admitted.length >= this.engine.maxSequences) break;
      const share = kv.longestPrefix(r.prompt, r.prompt.length - 1);
      // A prompt admitted this step has no KV yet; a later prompt sharing a longer prefix
      // with it waits one step and then reuses its pages instead of recomputing them.
      const lcp = Math.max(0, ...admitted.map((a) => commonPrefix(a.prompt, r.prompt, r.prompt.length - 1)));
      if (lcp >= kv.pageSize && lcp > (share?.prefix ?? 0)) continue;
      const need = r.prompt.length - (share?.prefix ?? 0);
      // A prompt that fits one forward waits for room for all of it; a longer one goes in chunks.
      const n = Math.min(need, budget);
      if (n === 0 || (n < need && need <= this.engine.maxTokensPerForward)) break;
      r.seq = kv.join(share ?? undefined);
      r.reused = share?.prefix ?? 0;
      r.pending = r.prompt.slice(r.reused);
      feed.set(r, n);
      budget -= n;
      admitted.push(r);
    }
    let batch = [...running.filter((r) => feed.has(r)), ...admitted];
    for (;;) {
      if (batch.length === 0) return;
      try {
        const items: BatchItem[] = batch.map((r) => ({ seq: r.seq!, tokens: r.pending.slice(0, feed.get(r)) }));
        const rows = await this.engine.forwardBatch(items, { rows: 'last' });
        this.steps++;
        this.maxBatch = Math.max(this.maxBatch, batch.length);
        batch.forEach((r, i) => {
          r.pending = r.pending.slice(feed.get(r));
          if (r.pending.length === 0) this.take(r, rows[i]);
        });
        return;
      } catch (e) {
        if (!(e instanceof KvPoolExhausted)) {
          // The forward changed nothing (forwardBatch's contract): its sequences end with what they have.
          const s = stopForError(e);
          for (const r of batch) this.end(r, s.stop, `stopped after ${r.out.length} tokens: ${s.message}`);
          return;
        }
        // New prompts wait for pages; then the newest running sequence gives its pages up.
        const newest = admitted.pop() ?? batch.filter((r) => !admitted.includes(r)).at(-1)!;
        batch = batch.filter((r) => r !== newest);
        kv.free(newest.seq!);
        newest.seq = null;
        if (newest.out.length > 0) {
          this.end(newest, 'kv_exhausted', `stopped after ${newest.out.length} tokens: ${e.message}`);
        } else if (batch.length === 0 && kv.pool.used === 0) {
          // Alone in an empty pool and still not held: it never will be.
          this.end(newest, 'prompt_too_large', `the prompt's ${newest.prompt.length} tokens do not fit the KV pool (${e.message})`);
        } else {
          // Still prefilling: back to the queue, to start again when pages free up.
          newest.pending = [...newest.prompt];
          newest.reused = 0;
        }
      }
    }
  }

  private end(r: Request, stop: BatchStopReason, message: string): void {
    r.stop = stop;
    r.message = message;
    if (r.seq !== null) { this.engine.kv.free(r.seq); r.seq = null; }
  }

  private take(r: Request, row: Float32Array): void {
    const m = this.engine.model;
    const id = r.sampler.sample(row);
    r.out.push(id);
    r.logprobs.push(topN(row, this.opts.topLogprobs ?? 0));
    this.opts.onToken?.(id, r.out.length - 1);
    const length = this.engine.kv.length(r.seq!);
    r.pending = [id];
    if (!this.opts.ignoreEos && ((m.eos !== null && id === m.eos) || this.opts.stopIds?.has(id))) r.stop = 'eos';
    else if (r.out.length >= this.opts.maxTokens) r.stop = 'max_tokens';
    else if (length >= m.maxContext) this.end(r, 'max_context', `stopped after ${r.out.length} tokens: the context of ${m.maxContext} is full`);
    if (r.stop !== null && r.seq !== null) { this.engine.kv.free(r.seq); r.seq = null; }
  }

  results(): SequenceResult[] {
    return this.requests.map((r) => ({ tokens: r.out, topLogprobs: r.logprobs, stop_reason: r.stop ?? 'max_tokens', ...(r.message ? { message: r.message } : {}), prefix_reused: r.reused }));
  }

  counters(): { steps: number; maxBatch: number } { return { steps: this.steps, maxBatch: this.maxBatch }; }
}

function commonPrefix(a: readonly number[], b: readonly number[], limit: number): number {
  let n = 0;
  while (n < limit && n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Generates for every prompt as one continuously batched run. */
export async function generateBatch(engine: Engine, prompts: readonly (readonly number[])[], opts: GenerateOptions): Promise<{ sequences: SequenceResult[]; stats: BatchStats }> {
  engine.reset();
  const g = new BatchGenerator(engine, opts);
  for (const p of prompts) g.add(p);
  const t0 = performance.now();
  while (!g.done) await g.step();
  const wall = performance.now() - t0;
  const sequences = g.results();
  const generated = sequences.reduce((a, s) => a + s.tokens.length, 0);
  const { steps, maxBatch } = g.counters();
  return {
    sequences,
    stats: {
      backend: engine.backend, sequences: prompts.length, prompt_tokens: prompts.reduce((a, p) => a + p.length, 0), generated_tokens: generated,
      prefix_reused_tokens: sequences.reduce((a, s) => a + s.prefix_reused, 0), steps, wall_ms: wall,
      tokens_per_s: generated / (wall / 1000), max_batch: maxBatch,
    },
  };
}
