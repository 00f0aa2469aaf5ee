// Which sequences one step of the serving loop feeds, and which waiting requests join
// it. As in runtime/batchGenerate.ts: decoders feed one token each, prompts still
// prefilling take what the per-forward token budget leaves (long prompts in chunks), and
// a waiting prompt sharing whole pages of prefix with a live sequence starts from them.
//
// Unlike the batch CLI, a server cannot end a running request because a newcomer took
// the pages it needs next: a request joins only when the pages it may ever hold (prompt
// plus max_tokens, capped by the context and the pool) fit beside those of the running
// ones. Every sequence's block table is at most that long and shared pages are counted
// once in the pool, so the pool never runs out mid-request. The queue is FIFO: a request
// that does not fit yet holds back the ones behind it, so a long one is not starved.
import type { Engine } from '../engine.ts';
import type { Sampler } from '../sampling.ts';
import type { Completion, ServeRequest } from './scheduler.ts';

export interface Slot {
  readonly req: ServeRequest;
  readonly prompt: readonly number[];
  seq: number | null;
  /** Tokens still to feed: the prompt (less any shared prefix), then the last sample. */
  pending: number[];
  readonly out: number[];
  readonly sampler: Sampler;
  readonly stopSet: ReadonlySet<number>;
  /** Pages reserved for this request while it runs. */
  readonly commit: number;
  /** performance.now() at arrival and at its last token (metrics). */
  readonly arrived: number;
  last: number;
  finished: boolean;
  cancelRequested?: boolean;
  readonly resolve: (c: Completion) => void;
}

export interface StepPlan {
  /** The sequences this step feeds, running ones first. */
  readonly batch: Slot[];
  readonly feed: Map<Slot, number>;
  /** Waiting requests that joined (their sequences are open); the caller moves them to running. */
  readonly admitted: Slot[];
}

/**
 * Only whole pages are shared: the owner writes past them and so does the newcomer, so no
 * one ever copies a shared page. (A shared partial page would be copied by both writers in
 * the same step, taking pages beyond the reservation for a moment.)
 */
function wholePages(share: { seq: number; prefix: number } | null, pageSize: number): { seq: number; prefix: number } | null {
  if (!share) return null;
  const prefix = Math.floor(share.prefix / pageSize) * pageSize;
  return prefix > 0 ? { seq: share.seq, prefix } : null;
}

/** Plans one step; `admitNew` false feeds the running sequences only. */
export function admit(engine: Engine, running: readonly Slot[], waiting: readonly Slot[], admitNew = true): StepPlan {
  const kv = engine.kv;
  const feed = new Map<Slot, number>();
  let budget = engine.maxTokensPerForward;
  const live = running.filter((r) => !r.finished && !r.cancelRequested);
  for (const r of [...live].sort((a, b) => a.pending.length - b.pending.length)) {
    const n = Math.min(r.pending.length, budget);
    if (n > 0) { feed.set(r, n); budget -= n; }
  }
  let committed = running.reduce((a, r) => a + r.commit, 0);
  const admitted: Slot[] = [];
  for (const r of admitNew ? waiting : []) {
    if (running.length + admitted.length >= engine.maxSequences) break;
    if (committed + r.commit > kv.pool.total) break;
    const share = wholePages(kv.longestPrefix(r.prompt, r.prompt.length - 1), kv.pageSize);
    // A prompt admitted this step has no KV yet: one sharing a longer prefix with it waits a
    // step and then reuses its pages instead of computing them again.
    const lcp = Math.max(0, ...admitted.map((a) => commonPrefix(a.prompt, r.prompt, r.prompt.length - 1)));
    if (lcp >= kv.pageSize && lcp > (share?.prefix ?? 0)) continue;
    const need = r.prompt.length - (share?.prefix ?? 0);
    // A prompt that fits one forward waits for room for all of it; a longer one goes in chunks.
    const n = Math.min(need, budget);
    if (n === 0 || (n < need && need <= engine.maxTokensPerForward)) break;
    r.seq = kv.join(share ?? undefined);
    r.pending = r.prompt.slice(share?.prefix ?? 0);
    feed.set(r, n);
    budget -= n;
    committed += r.commit;
    admitted.push(r);
  }
  return { batch: [...live.filter((r) => feed.has(r)), ...admitted], feed, admitted };
}

function commonPrefix(a: readonly number[], b: readonly number[], limit: number): number {
  let n = 0;
  while (n < limit && n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
