// The model side of speculative decoding, as the loop sees it: a set of
// sequences, each with a KV cache holding its first `length` tokens. One call
// scores several sequences (the batching seam), and `rollback` forgets a
// sequence's tail after a rejected draft. Positions are implicit (a sequence's
// new tokens always go at length, length+1, ...), so the cache stays a prefix
// of the sequence's tokens by construction.
//
// `EngineSeqModel` maps this onto today's Engine, which holds ONE contiguous
// sequence: each sequence gets its own engine instance and a batched call runs
// them one after another. When the paged, multi-sequence engine lands, a
// second implementation runs the whole batch in one forward and maps rollback
// onto freeing the sequence's pages past `length`; the loop does not change.
import type { Engine } from '../engine.ts';

export interface SeqItem {
  readonly seq: number;
  /** Appended at positions length(seq), length(seq)+1, ... */
  readonly tokens: readonly number[];
}

export interface SeqModelStats {
  /** Batched calls of `forward`. */
  readonly calls: number;
  /** Per-sequence forwards (one per item of each call). */
  readonly passes: number;
  /** Tokens written to the caches (rolled-back ones included). */
  readonly tokensWritten: number;
  /** Tokens discarded by rollbacks. */
  readonly tokensRolledBack: number;
  /** Wall time of all forwards. */
  readonly ms: number;
}

export interface SeqModel {
  readonly vocab: number;
  readonly maxContext: number;
  /** The most tokens one item may carry. */
  readonly maxTokensPerForward: number;
  /** Starts a new, empty sequence and returns its id. */
  open(): number;
  close(seq: number): void;
  /** Tokens whose K/V the sequence's cache holds (positions 0..length-1). */
  length(seq: number): number;
  /** Scores every item in one pass; returns each item's logits, [tokens, vocab] row-major. */
  forward(items: readonly SeqItem[]): Promise<Float32Array[]>;
  /** Forgets everything past `length` tokens (length <= current length). */
  rollback(seq: number, length: number): void;
  stats(): SeqModelStats;
}

export class SeqModelError extends Error {}

/**
 * Today's Engine behind SeqModel: one engine instance per open sequence
 * (created by `make`, reused after close), run sequentially within a call.
 *
 * Rollback only records the shorter length, and that is exact for the
 * contiguous cache: a token at position p attends to cache positions <= p
 * only (the kernels and the interpreter bound the causal loop by the query's
 * own position), and every forward writes its tokens' K/V before attention
 * reads them. So entries past `length` are never read before the next forward
 * overwrites them at the same positions, and the result equals a cache that
 * never held them. `test/runtime/speculative*.test.ts` checks this against
 * plain decoding.
 */
export class EngineSeqModel implements SeqModel {
  readonly vocab: number;
  readonly maxContext: number;
  readonly maxTokensPerForward: number;
  private readonly engines = new Map<number, Engine>();
  private readonly free: Engine[] = [];
  private readonly lengths = new Map<number, number>();
  private next = 0;
  private s = { calls: 0, passes: 0, tokensWritten: 0, tokensRolledBack: 0, ms: 0 };

  constructor(first: Engine, private readonly make: () => Promise<Engine> | Engine) {
    this.vocab = first.model.vocab;
    this.maxContext = first.model.maxContext;
    this.maxTokensPerForward = first.maxTokensPerForward;
    this.free.push(first);
  }

  /** Creates the engines for n sequences ahead of time (WebGPU setup is slow). */
  async reserve(n: number): Promise<void> {
    while (this.free.length + this.engines.size < n) this.free.push(await this.make());
  }

  open(): number {
    const e = this.free.pop();
    if (!e) throw new SeqModelError('no engine free for a new sequence: call reserve(n) for n sequences first');
    e.reset();
    const id = this.next++;
    this.engines.set(id, e);
    this.lengths.set(id, 0);
    return id;
  }

  close(seq: number): void {
    const e = this.engine(seq);
    this.engines.delete(seq);
    this.lengths.delete(seq);
    this.free.push(e);
  }

  length(seq: number): number {
    this.engine(seq);
    return this.lengths.get(seq)!;
  }

  async forward(items: readonly SeqItem[]): Promise<Float32Array[]> {
    const t0 = performance.now();
    const out: Float32Array[] = [];
    // The batching seam: one engine per sequence today, so the items run in turn.
    for (const it of items) {
      const e = this.engine(it.seq);
      const start = this.lengths.get(it.seq)!;
      const T = it.tokens.length;
      if (T === 0) throw new SeqModelError(`sequence ${it.seq}: a forward needs at least one token`);
      if (T > this.maxTokensPerForward) throw new SeqModelError(`sequence ${it.seq}: ${T} tokens exceed the ${this.maxTokensPerForward} one forward takes`);
      if (start + T > this.maxContext) throw new SeqModelError(`sequence ${it.seq}: positions up to ${start + T - 1} fall outside the context of ${this.maxContext}`);
      const rows = await e.forward(Int32Array.from(it.tokens), Int32Array.from({ length: T }, (_, i) => start + i), { rows: 'all' });
      this.lengths.set(it.seq, start + T);
      this.s.passes++;
      this.s.tokensWritten += T;
      out.push(rows);
    }
    this.s.calls++;
    this.s.ms += performance.now() - t0;
    return out;
  }

  rollback(seq: number, length: number): void {
    const cur = this.length(seq);
    if (!Number.isInteger(length) || length < 0 || length > cur) throw new SeqModelError(`sequence ${seq}: cannot roll back to ${length} tokens; it holds ${cur}`);
    this.s.tokensRolledBack += cur - length;
    this.lengths.set(seq, length);
  }

  stats(): SeqModelStats { return { ...this.s }; }

  /** Every engine this model created (for disposal and engine stats). */
  allEngines(): Engine[] { return [...this.engines.values(), ...this.free]; }

  dispose(): void { for (const e of this.allEngines()) e.dispose(); }

  private engine(seq: number): Engine {
    const e = this.engines.get(seq);
    if (!e) throw new SeqModelError(`no open sequence ${seq}`);
    return e;
  }
}
