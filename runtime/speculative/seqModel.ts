// The model side of speculative decoding, as the loop sees it: a set of
// sequences, each with a KV cache holding its first `length` tokens. One call
// scores several sequences (the batching seam: any number of them, each item at
// most maxTokensPerForward tokens; an implementation runs the call in as many
// forwards as its engine's limits need, see `forwardGroups`), and `rollback` forgets a
// sequence's tail after a rejected draft. Positions are implicit (a sequence's
// new tokens always go at length, length+1, ...), so the cache stays a prefix
// of the sequence's tokens by construction.
//
// `PagedSeqModel` (pagedSeqModel.ts) implements it over an engine's KV page pool:
// the batch in as few forwards as the engine's per-forward limits allow (one when
// it fits), rollback freeing the pages past `length`.

export interface SeqItem {
  readonly seq: number;
  /** Appended at positions length(seq), length(seq)+1, ... */
  readonly tokens: readonly number[];
}

export interface SeqModelStats {
  /** Engine forwards run by `forward` (a call whose batch exceeds the engine's limits runs several). */
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
  /** The most tokens one item may carry (a call may carry more in all: it is split). */
  readonly maxTokensPerForward: number;
  /** Starts a new, empty sequence and returns its id. */
  open(): number;
  close(seq: number): void;
  /** Tokens whose K/V the sequence's cache holds (positions 0..length-1). */
  length(seq: number): number;
  /** Scores every item (batched as the model's limits allow); returns each item's logits, [tokens, vocab] row-major. */
  forward(items: readonly SeqItem[]): Promise<Float32Array[]>;
  /** Forgets everything past `length` tokens (length <= current length). */
  rollback(seq: number, length: number): void;
  stats(): SeqModelStats;
}

export class SeqModelError extends Error {}

/**
 * Splits a batch, in order, into consecutive groups of at most `maxItems` items and
 * `maxTokens` tokens in all: what one forward of an engine with those limits takes
 * (Engine.maxSequences, Engine.maxTokensPerForward). Each group is as long as the
 * limits allow, so a batch that fits stays one group. An item over `maxTokens` by
 * itself can never run and throws.
 */
export function forwardGroups<T extends { readonly tokens: { readonly length: number } }>(items: readonly T[], maxItems: number, maxTokens: number): T[][] {
  if (!(maxItems >= 1) || !(maxTokens >= 1)) throw new SeqModelError(`per-forward limits must be at least 1, got ${maxItems} sequences and ${maxTokens} tokens`);
  const groups: T[][] = [];
  let group: T[] = [], tokens = 0;
  for (const it of items) {
    const n = it.tokens.length;
    if (n > maxTokens) throw new SeqModelError(`an item of ${n} tokens exceeds the limit of ${maxTokens} tokens per forward`);
    if (group.length && (group.length === maxItems || tokens + n > maxTokens)) { groups.push(group); group = []; tokens = 0; }
    group.push(it);
    tokens += n;
  }
  if (group.length) groups.push(group);
  return groups;
}
