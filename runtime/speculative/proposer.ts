// The one interface every proposer implements: given each sequence's context
// (prompt + tokens generated so far) and a lookahead k, propose up to k next
// tokens, with the distribution each was drawn from. Proposers work on a batch
// of sequences at once so a model-based one can run one draft forward per
// drafted position for the whole batch.
import type { SamplingOptions } from '../sampling.ts';

export type ProposerKind = 'draft' | 'self-draft' | 'ngram';

export interface ProposeRequest {
  /** The target's sequence id (the proposer keeps its own state per id). */
  readonly seq: number;
  /** Every token of the sequence so far; the last one is not yet in the target's cache. */
  readonly context: readonly number[];
  /** Propose at most this many tokens (>= 1). */
  readonly k: number;
}

export interface Proposal {
  /** 0..k proposed tokens. */
  readonly tokens: readonly number[];
  /**
   * q[i]: the distribution tokens[i] was drawn from (full vocabulary, after the
   * sampling filters), or null when the proposal is deterministic (a point mass).
   */
  readonly q: readonly (Float64Array | null)[];
}

export interface ProposerStats {
  /** Proposer wall time (draft forwards included). */
  readonly ms: number;
  /** Tokens proposed. */
  readonly tokens: number;
  /** Draft forwards (per sequence); 0 for model-free proposers. */
  readonly passes: number;
  /** Draft cache tokens discarded by rollbacks (0 for model-free proposers). */
  readonly rolledBack: number;
}

export interface Proposer {
  readonly kind: ProposerKind;
  /** One line for reports, e.g. "draft TinyDraft (1 layer)". */
  readonly description: string;
  /** Sets the sampling options proposals are drawn with (the target's own). */
  configure(sampling: SamplingOptions): void;
  /** Starts sequence `seq`, the `index`-th of its batch (random streams derive from the seed and index, so runs reproduce). */
  open(seq: number, index: number): void;
  close(seq: number): void;
  /** The most tokens it may propose after a context of this many tokens (its own context limit). */
  limit(contextLength: number): number;
  propose(requests: readonly ProposeRequest[]): Promise<Proposal[]>;
  /** After verification: `context` is the sequence now; forget state past the prefix it agrees with. */
  sync(seq: number, context: readonly number[]): void;
  stats(): ProposerStats;
}

/** Length of the longest common prefix. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
