// The model side of speculative decoding, as the loop sees it: a set of
// sequences, each with a KV cache holding its first `length` tokens. One call
// scores several sequences (the batching seam), and `rollback` forgets a
// sequence's tail after a rejected draft. Positions are implicit (a sequence's
// new tokens always go at length, length+1, ...), so the cache stays a prefix
// of the sequence's tokens by construction.
//
// `PagedSeqModel` (pagedSeqModel.ts) implements it over an engine's KV page pool:
// the whole batch in one forward, rollback freeing the pages past `length`.

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
