// The speculative decoding loop over a batch of sequences. Each sequence is a
// small state machine (prefill -> decode steps -> done); a step is
//   1. choose K (fixed, or adaptive), capped by tokens still wanted and by the
//      target's and the proposer's context;
//   2. propose up to K tokens for every active sequence (one batched call);
//   3. one target pass per sequence over [last token, d1..dK] at its next
//      positions: K+1 rows, i.e. a multi-token causal query over the cache
//      (one batched call: the seam where the paged engine runs the whole batch,
//      split into several forwards where it exceeds the engine's maxSequences or
//      maxTokensPerForward; see seqModel.ts's forwardGroups);
//   4. verify (greedy prefix match or rejection sampling), roll the target's
//      cache back to the accepted prefix, emit accepted + 1 tokens (stopping at
//      eos / max tokens), and let the proposer roll its own state back.
// Sequences accept different numbers of tokens in the same step; each carries
// on from its own length.
// Nothing generated is lost: a fired AbortSignal ends every sequence with
// 'cancelled'; a full KV pool (target's or draft's) ends the newest sequence of
// the step with 'kv_exhausted' ('prompt_too_large' when it is alone and has no
// output yet), rolls the others back to where the step began and retries; any
// other failure ends the step's sequences with 'error' and its message.
import { GenerateError } from '../engine.ts';
import { KvPoolExhausted } from '../kv/pagePool.ts';
import { cancelledMessage, stopForError, yieldToEvents, type StopReason } from '../stop.ts';
import { Rng, Sampler, topLogprobs, type SamplingOptions, type TokenLogprob } from '../sampling.ts';
import { AdaptiveLookahead } from './adaptive.ts';
import type { Proposal, Proposer } from './proposer.ts';
import type { SeqModel } from './seqModel.ts';
import { SpecCounter, specStats, type SpecStats } from './stats.ts';
import { distribution, verifyGreedy, verifySample, type SampleVerifyRules } from './verify.ts';

export interface SpecOptions {
  readonly maxTokens: number;
  /** K: drafts per pass (the maximum when adaptive). */
  readonly lookahead: number;
  readonly adaptive?: boolean;
  /** Adaptive only: target pass costs measured beforehand, as [tokens scored, ms] pairs. */
  readonly calibration?: readonly (readonly [number, number])[];
  readonly sampling?: SamplingOptions;
  readonly eos?: number | null;
  /** More ids that end a sequence like eos (a tokenizer's end-of-turn ids). */
  readonly stopIds?: ReadonlySet<number>;
  readonly ignoreEos?: boolean;
  readonly onToken?: (sequence: number, id: number, index: number) => void;
  /** Log-probabilities of the N most likely tokens at each generated position (temperature 1), from the target's rows. */
  readonly topLogprobs?: number;
  /** Called after each step with every active sequence's accepted-draft count (tests, progress). */
  readonly onStep?: (accepted: readonly number[]) => void;
  /** Cancels between steps; what was generated comes back with stop 'cancelled'. */
  readonly signal?: AbortSignal;
  /** For tests only: replace the acceptance/residual rules (to show a broken rule is caught). */
  readonly rules?: SampleVerifyRules;
}

export interface SpecSequence {
  readonly tokens: number[];
  readonly topLogprobs: TokenLogprob[][];
  readonly stop: StopReason;
  readonly notice?: string;
}

export interface SpecRunStats {
  readonly prompt_tokens: number;
  readonly generated_tokens: number;
  readonly prefill_ms: number;
  readonly decode_ms: number;
  /** Tokens after each sequence's first (which prefill yields) per second of decode. */
  readonly tokens_per_s: number;
  readonly spec: SpecStats;
}

export interface SpecResult {
  readonly sequences: SpecSequence[];
  readonly stats: SpecRunStats;
}

interface State {
  readonly index: number;
  readonly seq: number;
  readonly context: number[];
  readonly out: number[];
  readonly logprobs: TokenLogprob[][];
  readonly rng: Rng;
  stop: StopReason | null;
  notice?: string;
  /** Its target and proposer sequences are closed (it stopped early and freed its pages). */
  closed: boolean;
}

export async function speculativeGenerate(target: SeqModel, proposer: Proposer, prompts: readonly (readonly number[])[], o: SpecOptions): Promise<SpecResult> {
  const V = target.vocab;
  if (!Number.isInteger(o.lookahead) || o.lookahead < 1) throw new GenerateError(`lookahead must be an integer >= 1, got ${o.lookahead}`);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new GenerateError(`max tokens must be an integer >= 0, got ${o.maxTokens}`);
  for (const p of prompts) {
    if (p.length === 0) throw new GenerateError('the prompt is empty: give at least one token');
    const bad = p.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined) throw new GenerateError(`prompt token ${bad} is outside the vocabulary of ${V}`);
    if (p.length > target.maxContext) throw new GenerateError(`the prompt has ${p.length} tokens but the model's context holds ${target.maxContext}`);
  }
  const sampling = o.sampling ?? {};
  const first = new Sampler(sampling); // validates the options too
  const isGreedy = first.isGreedy;
  proposer.configure(sampling);
  const adaptive = o.adaptive ? new AdaptiveLookahead(o.lookahead) : null;
  if (o.calibration) adaptive?.calibrate(o.calibration);
  const counter = new SpecCounter();
  // Models and proposers may be reused across runs: report this run's share of their counters.
  const ps0 = proposer.stats(), ts0 = target.stats();
  let verifyMs = 0;

  const states: State[] = prompts.map((p, index) => {
    const seq = target.open();
    proposer.open(seq, index);
    // Sequence 0 samples its first token exactly as `generate` would with the same seed.
    return { index, seq, context: [...p], out: [], logprobs: [], rng: new Rng(((sampling.seed ?? 0) + index) ^ 0x2545f491), stop: null, closed: false };
  });
  const firstSamplers = states.map((s) => (s.index === 0 ? first : new Sampler({ ...sampling, seed: (sampling.seed ?? 0) + s.index })));
  const nLog = o.topLogprobs ?? 0;
  /** Emits one token; `row` is the target's logits row it was chosen from. */
  const emit = (s: State, id: number, row: Float32Array): boolean => {
    s.out.push(id);
    s.logprobs.push(topLogprobs(row, nLog));
    s.context.push(id);
    o.onToken?.(s.index, id, s.out.length - 1);
    if (!o.ignoreEos && ((o.eos !== null && o.eos !== undefined && id === o.eos) || o.stopIds?.has(id))) s.stop = 'eos';
    else if (s.out.length >= o.maxTokens) s.stop = 'max_tokens';
    return s.stop === null;
  };
  const end = (s: State, stop: StopReason, notice: string): void => {
    s.stop = stop;
    s.notice = notice;
    if (!s.closed) { s.closed = true; proposer.close(s.seq); target.close(s.seq); }
  };
  /** Ends every unfinished sequence when the signal has fired; true if it has. */
  const cancelled = async (): Promise<boolean> => {
    if (!o.signal) return false;
    await yieldToEvents();
    if (!o.signal.aborted) return false;
    for (const s of states) if (s.stop === null) end(s, 'cancelled', cancelledMessage(s.out.length));
    return true;
  };
  /**
   * After a failed step over `live`: a full pool ends the newest sequence (its pages free the
   * others' next try), restoring the others' caches to `lengths` and their proposer state;
   * any other failure ends them all. PagedSeqModel.forward undoes its own partial writes.
   */
  const recover = (e: unknown, live: readonly State[], lengths: readonly number[]): void => {
    if (!(e instanceof KvPoolExhausted)) {
      const f = stopForError(e);
      for (const s of live) end(s, f.stop, `stopped after ${s.out.length} tokens: ${f.message}`);
      return;
    }
    live.forEach((s, i) => { if (target.length(s.seq) > lengths[i]) target.rollback(s.seq, lengths[i]); proposer.sync(s.seq, s.context); });
    const victim = live[live.length - 1];
    if (victim.out.length === 0 && live.length === 1) end(victim, 'prompt_too_large', `the prompt's ${victim.context.length} tokens do not fit the KV pool (${e.message})`);
    else end(victim, 'kv_exhausted', `stopped after ${victim.out.length} tokens: ${e.message}`);
  };

  try {
    // Prefill every prompt (each chunked by the per-forward limit; the model splits the batch
    // to its limits); the last row gives the first token.
    const t0 = performance.now();
    if (o.maxTokens === 0) for (const s of states) s.stop = 'max_tokens';
    let filling = states.filter((s) => s.stop === null);
    while (filling.length) {
      if (await cancelled()) break;
      const items = filling.map((s) => ({ seq: s.seq, tokens: s.context.slice(target.length(s.seq), target.length(s.seq) + target.maxTokensPerForward) }));
      let rows: Float32Array[];
      try { rows = await target.forward(items); } catch (e) {
        recover(e, filling, filling.map((s) => target.length(s.seq)));
        filling = filling.filter((s) => s.stop === null);
        continue;
      }
      filling.forEach((s, j) => {
        const last = rows[j].subarray(rows[j].length - V);
        if (target.length(s.seq) === s.context.length) emit(s, firstSamplers[s.index].sample(last), last);
      });
      filling = filling.filter((s) => s.stop === null && s.out.length === 0);
    }
    const t1 = performance.now();

    let active = states.filter((s) => s.stop === null);
    while (active.length) {
      if (await cancelled()) break;
      // 1. K per sequence.
      const ks = active.map((s) => {
        const L = s.context.length;
        if (L - 1 >= target.maxContext) {
          s.stop = 'max_context';
          s.notice = `stopped after ${s.out.length} tokens: the next forward would run at position ${L - 1}, past the model's context of ${target.maxContext}`;
          return 0;
        }
        const want = adaptive ? adaptive.choose(s.seq) : o.lookahead;
        const pend = L - target.length(s.seq);
        return Math.max(0, Math.min(want, o.maxTokens - s.out.length - 1, target.maxContext - L, target.maxTokensPerForward - pend, proposer.limit(L)));
      });
      const liveK = active.map((s, i) => [s, ks[i]] as const).filter(([s]) => s.stop === null);
      const live = liveK.map(([s]) => s);
      if (!live.length) break;
      // 2. Propose.
      const askers = liveK.filter(([, k]) => k > 0);
      const pms = proposer.stats().ms;
      const lengths = live.map((s) => target.length(s.seq));
      let got: Proposal[];
      try { got = askers.length ? await proposer.propose(askers.map(([s, k]) => ({ seq: s.seq, context: s.context, k }))) : []; } catch (e) {
        recover(e, live, lengths);
        active = live.filter((s) => s.stop === null);
        continue;
      }
      const proposals = new Map<State, Proposal>(askers.map(([s], i) => [s, got[i]]));
      const drafted = got.reduce((a, p) => a + p.tokens.length, 0);
      adaptive?.observeDraft(proposer.stats().ms - pms, drafted);
      // 3. One target pass per sequence, batched.
      const items = live.map((s) => {
        const p = proposals.get(s);
        const tail = s.context.slice(target.length(s.seq));
        return { s, before: target.length(s.seq), pend: tail.length, drafts: p?.tokens ?? [], q: p?.q ?? [], tokens: [...tail, ...(p?.tokens ?? [])] };
      });
      const tv = performance.now();
      let rows: Float32Array[];
      try { rows = await target.forward(items.map((it) => ({ seq: it.s.seq, tokens: it.tokens }))); } catch (e) {
        recover(e, live, lengths);
        active = live.filter((s) => s.stop === null);
        continue;
      }
      const ms = performance.now() - tv;
      verifyMs += ms;
      for (const it of items) adaptive?.observeVerify(ms / items.length, it.tokens.length);
      // 4. Verify, roll back, emit.
      const acceptedNow: number[] = [];
      items.forEach((it, j) => {
        const K = it.drafts.length;
        const r = rows[j].subarray((it.pend - 1) * V); // rows for [last, d1..dK]
        const v = isGreedy
          ? verifyGreedy(r, V, it.drafts)
          : verifySample(Array.from({ length: K + 1 }, (_, i) => distribution(r.subarray(i * V, (i + 1) * V), sampling)), it.drafts, it.q, it.s.rng, o.rules);
        target.rollback(it.s.seq, it.before + it.pend + v.accepted);
        let emitted = 0;
        // Row i of [last, d1..dK] scored the token emitted i-th here.
        for (const [i, id] of [...it.drafts.slice(0, v.accepted), v.next].entries()) { emitted++; if (!emit(it.s, id, r.subarray(i * V, (i + 1) * V))) break; }
        const tested = v.accepted < K ? v.accepted + 1 : K;
        acceptedNow.push(v.accepted);
        counter.pass(K, tested, v.accepted, emitted);
        adaptive?.observeAcceptance(it.s.seq, v.accepted, tested);
        proposer.sync(it.s.seq, it.s.context);
      });
      o.onStep?.(acceptedNow);
      active = live.filter((s) => s.stop === null);
    }
    const t2 = performance.now();

    const generated = states.reduce((a, s) => a + s.out.length, 0);
    const afterFirst = states.reduce((a, s) => a + Math.max(0, s.out.length - 1), 0);
    const ps = proposer.stats(), ts = target.stats();
    return {
      sequences: states.map((s) => ({ tokens: s.out, topLogprobs: s.logprobs, stop: s.stop ?? 'max_tokens', ...(s.notice ? { notice: s.notice } : {}) })),
      stats: {
        prompt_tokens: prompts.reduce((a, p) => a + p.length, 0), generated_tokens: generated,
        prefill_ms: t1 - t0, decode_ms: t2 - t1, tokens_per_s: t2 > t1 ? afterFirst / ((t2 - t1) / 1000) : 0,
        spec: specStats(counter, {
          proposer: proposer.description, lookahead: adaptive ? adaptive.meanK() : o.lookahead, adaptive: !!adaptive,
          draftPasses: ps.passes - ps0.passes, draftMs: ps.ms - ps0.ms, verifyMs,
          targetRolledBack: ts.tokensRolledBack - ts0.tokensRolledBack, draftRolledBack: ps.rolledBack - ps0.rolledBack,
        }),
      },
    };
  } finally {
    for (const s of states) if (!s.closed) { proposer.close(s.seq); target.close(s.seq); }
  }
}
