// Speculative decoding on the CPU engine. Greedy: for random targets, drafts
// (an unrelated model with the same vocabulary, the target cut to fewer
// layers, prompt lookup) and K in 1..8, fixed or adaptive, the output equals
// plain greedy decoding token for token, for single sequences and batches.
// KV accounting: a shadow model recomputes every pass from scratch over the
// tokens the cache is supposed to hold, so a rollback that left a stale entry
// visible, or dropped a live one, changes logits and fails.
// Per-forward limits: more sequences than the engines' maxSequences, and prompt
// and verification batches whose token totals exceed maxTokensPerForward, run
// as several forwards and still equal plain decoding.
import type { Graph } from '../../compiler/ir/index.ts';
import type { Program } from '../../program/program.ts';
import { schedule } from '../../compiler/schedule.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { AdaptiveLookahead, expectedTokens } from '../../runtime/speculative/adaptive.ts';
import { speculativeGenerate } from '../../runtime/speculative/decode.ts';
import { lookup } from '../../runtime/speculative/ngram.ts';
import { forwardGroups, type SeqItem, type SeqModel } from '../../runtime/speculative/seqModel.ts';
import { PagedSeqModel } from '../../runtime/speculative/pagedSeqModel.ts';
import type { BatchItem } from '../../runtime/kv/batchStep.ts';
import type { ForwardOptions } from '../../runtime/engine.ts';
import { KvPoolExhausted } from '../../runtime/kv/sequences.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { specSetup, type MakeEngine, type ProposerChoice } from '../fixtures/specSetup.ts';

const cpu: MakeEngine = (g, w, p) => new CpuEngine(g, w, p);

const targetArb = fc.record({
  vocab: fc.constantFrom(24, 40), dim: fc.constantFrom(16, 24), layers: fc.integer({ min: 2, max: 4 }),
  kvHeads: fc.constantFrom(1, 2), headDim: fc.constantFrom(4, 8), ffn: fc.constantFrom(20, 32),
  // Contiguous or paged KV (rollbacks then free whole pages).
  pageSize: fc.constantFrom(undefined, 1, 4),
}).map((r): LlamaShape => ({ ...r, heads: 2 * r.kvHeads, maxContext: 64 }));

const choiceArb = (t: LlamaShape): fc.Arbitrary<ProposerChoice> => fc.oneof(
  fc.record({ kind: fc.constant('draft' as const), seed: fc.integer({ min: 1, max: 1 << 20 }),
    shape: fc.record({ dim: fc.constantFrom(8, 16), layers: fc.constantFrom(1, 2) }).map((d): LlamaShape => ({ ...d, vocab: t.vocab, heads: 2, kvHeads: 1, headDim: 4, ffn: 12, maxContext: 64 })) }),
  fc.record({ kind: fc.constant('self' as const), layers: fc.integer({ min: 1, max: t.layers - 1 }) }),
  fc.record({ kind: fc.constant('ngram' as const), n: fc.integer({ min: 1, max: 3 }) }),
);

/** A prompt with repeats in it, so prompt lookup finds matches. */
const promptArb = (vocab: number) => fc.array(fc.integer({ min: 0, max: Math.min(vocab, 6) - 1 }), { minLength: 1, maxLength: 12 });

describe('speculative decoding, greedy (CPU engine)', () => {
  it("a draft with a shorter context stops proposing at its end; the target carries on alone", async () => {
    const shape: LlamaShape = { vocab: 24, dim: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, ffn: 20, maxContext: 64 };
    const draft: LlamaShape = { vocab: 24, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 12, maxContext: 12 };
    const s = await specSetup(shape, 9, { kind: 'draft', seed: 4, shape: draft }, cpu);
    try {
      const prompt = [1, 2, 3, 4, 5];
      const want = await generate(s.reference, prompt, { maxTokens: 30, ignoreEos: true });
      const got = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 30, lookahead: 4, ignoreEos: true });
      expect(got.sequences[0].tokens).toEqual(want.tokens);
      expect(s.draft!.stats().tokensWritten).toBeLessThanOrEqual(40);
      expect(got.stats.spec.target_passes).toBeGreaterThan(got.stats.spec.proposed / 4 + 10); // many passes had nothing proposed
    } finally { s.dispose(); }
  });

  it('equals plain greedy decoding token for token: random targets, proposers, K in 1..8, fixed or adaptive', async () => {
    const arb = targetArb.chain((t) => fc.tuple(fc.constant(t), choiceArb(t), fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: 8 }),
      fc.boolean(), promptArb(t.vocab), fc.integer({ min: 1, max: 24 })));
    await fc.assert(fc.asyncProperty(arb, async ([shape, choice, seed, K, adaptive, prompt, maxTokens]) => {
      const s = await specSetup(shape, seed, choice, cpu);
      try {
        const want = await generate(s.reference, prompt, { maxTokens, ignoreEos: true });
        const got = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens, lookahead: K, adaptive, ignoreEos: true });
        expect(got.sequences[0].tokens).toEqual(want.tokens);
        const st = got.stats.spec;
        expect(st.target_passes).toBe(s.target.stats().passes - 1); // every pass after the prompt's
        expect(st.accepted).toBeLessThanOrEqual(st.tested);
        expect(st.tested).toBeLessThanOrEqual(st.proposed);
        // Each pass emits its accepted drafts plus one token (bar the cut at max tokens).
        expect(got.stats.generated_tokens).toBe(Math.min(maxTokens, 1 + st.accepted + st.target_passes));
      } finally { s.dispose(); }
    }), { numRuns: 30 });
  }, 120_000);

  it('a batch of sequences with different acceptance lengths in one step each equals its own plain decode', async () => {
    const shape: LlamaShape = { vocab: 32, dim: 24, layers: 3, heads: 4, kvHeads: 2, headDim: 6, ffn: 32, maxContext: 64 };
    const prompts = [[1, 2, 3, 1, 2, 3, 1, 2], [5], [7, 7, 7, 7, 9, 4]];
    for (const choice of [{ kind: 'self', layers: 1 }, { kind: 'ngram', n: 2 }] as ProposerChoice[]) {
      const s = await specSetup(shape, 11, choice, cpu, prompts.length);
      try {
        const steps: number[][] = [];
        const got = await speculativeGenerate(s.target, s.proposer, prompts, { maxTokens: 20, lookahead: 4, ignoreEos: true, onStep: (a) => steps.push([...a]) });
        for (let i = 0; i < prompts.length; i++) expect(got.sequences[i].tokens).toEqual((await generate(s.reference, prompts[i], { maxTokens: 20, ignoreEos: true })).tokens);
        expect(steps.some((a) => a.length > 1 && new Set(a).size > 1), 'some step has differing acceptance counts').toBe(true);
      } finally { s.dispose(); }
    }
  }, 60_000);

  it('stops at eos (included) and at the end of the context like plain decoding', async () => {
    const shape: LlamaShape = { vocab: 24, dim: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, ffn: 20, maxContext: 20 };
    const s = await specSetup(shape, 5, { kind: 'self', layers: 1 }, cpu);
    try {
      const prompt = [3, 4, 5, 6, 7, 8];
      const plain = await generate(s.reference, prompt, { maxTokens: 40, ignoreEos: true });
      expect(plain.stats.stop_reason).toBe('max_context');
      const spec = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 40, lookahead: 5, ignoreEos: true });
      expect(spec.sequences[0]).toMatchObject({ tokens: plain.tokens, stop: 'max_context' });
      const eos = plain.tokens[4];
      const cut = plain.tokens.slice(0, plain.tokens.indexOf(eos) + 1);
      const e = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 40, lookahead: 5, eos });
      expect(e.sequences[0]).toMatchObject({ tokens: cut, stop: 'eos' });
    } finally { s.dispose(); }
  });
});

/** Checks every pass against a from-scratch forward over the tokens the cache should hold. */
class ShadowModel implements SeqModel {
  readonly held = new Map<number, number[]>();
  checked = 0;
  constructor(private readonly inner: SeqModel, private readonly fresh: () => CpuEngine) {}
  get vocab() { return this.inner.vocab; }
  get maxContext() { return this.inner.maxContext; }
  get maxTokensPerForward() { return this.inner.maxTokensPerForward; }
  open() { const s = this.inner.open(); this.held.set(s, []); return s; }
  close(seq: number) { this.inner.close(seq); this.held.delete(seq); this.pages(); }
  length(seq: number) { const n = this.inner.length(seq); expect(n).toBe(this.held.get(seq)!.length); return n; }
  rollback(seq: number, length: number) { this.inner.rollback(seq, length); this.held.get(seq)!.length = length; this.pages(); }
  /** The page pool's accounting is exact: refcounts match the tables, each sequence holds ceil(length / page) pages. */
  pages(): void {
    if (!(this.inner instanceof PagedSeqModel)) return;
    const kv = this.inner.engine.kv;
    kv.check();
    for (const [seq, toks] of this.held) expect(kv.pages(seq).length).toBe(Math.ceil(toks.length / kv.pageSize));
    this.pageChecks++;
  }
  pageChecks = 0;
  stats() { return this.inner.stats(); }
  async forward(items: readonly SeqItem[]): Promise<Float32Array[]> {
    const out = await this.inner.forward(items);
    for (const it of items) this.held.get(it.seq)!.push(...it.tokens);
    this.pages();
    for (const [j, it] of items.entries()) {
      const all = this.held.get(it.seq)!;
      const e = this.fresh();
      const want = await e.forward(Int32Array.from(all), Int32Array.from(all.keys()));
      const tail = want.subarray(want.length - out[j].length);
      out[j].forEach((x, i) => expect(Math.abs(x - tail[i])).toBeLessThan(1e-5 * (1 + Math.abs(tail[i]))));
      this.checked++;
    }
    return out;
  }
}

describe('KV accounting through rollbacks', () => {
  it('every target and draft pass equals a fresh forward over exactly the tokens kept, greedy and sampled', async () => {
    const shape: LlamaShape = { vocab: 24, dim: 16, layers: 3, heads: 2, kvHeads: 1, headDim: 8, ffn: 20, maxContext: 64, pageSize: 4 };
    for (const sampling of [{}, { temperature: 1.2, seed: 3 }]) {
      const s = await specSetup(shape, 21, { kind: 'self', layers: 1 }, cpu, 2);
      try {
        const { denseLlama } = await import('../fixtures/denseLlama.ts');
        const { RandomWeights } = await import('../../runtime/weights/random.ts');
        const tg = denseLlama(shape), dg = denseLlama({ ...shape, layers: 1 });
        const w = new RandomWeights(tg.params, 21);
        const target = new ShadowModel(s.target, () => new CpuEngine(tg, w, schedule(tg)));
        const draft = new ShadowModel(s.draft!, () => new CpuEngine(dg, w, schedule(dg)));
        const { DraftProposer } = await import('../../runtime/speculative/draft.ts');
        const proposer = new DraftProposer(draft, 'self-draft', 'self');
        const r = await speculativeGenerate(target, proposer, [[1, 2, 3], [4, 5, 6, 7, 8]], { maxTokens: 16, lookahead: 3, sampling, ignoreEos: true });
        expect(r.stats.spec.target_rolled_back + r.stats.spec.draft_rolled_back).toBeGreaterThan(0);
        // The same seed reproduces the run exactly (streams derive from seed and batch index, not sequence ids).
        const again = await speculativeGenerate(target, proposer, [[1, 2, 3], [4, 5, 6, 7, 8]], { maxTokens: 16, lookahead: 3, sampling, ignoreEos: true });
        expect(again.sequences.map((q) => q.tokens)).toEqual(r.sequences.map((q) => q.tokens));
        expect(target.checked).toBeGreaterThan(4);
        expect(draft.checked).toBeGreaterThan(4);
        expect(target.pageChecks).toBeGreaterThan(4);
        expect(draft.pageChecks).toBeGreaterThan(4);
        // Every sequence was closed: no page leaked, none freed twice (PagePool throws on that).
        expect((s.target as PagedSeqModel).engine.kv.ids, "target sequences left open").toEqual([]);
        expect((s.target as PagedSeqModel).engine.kv.pool.used).toBe(0);
        expect((s.draft as PagedSeqModel).engine.kv.pool.used).toBe(0);
        // Written minus rolled back = what the caches held when the sequences finished.
        const ts = s.target.stats();
        expect(ts.tokensRolledBack).toBe(r.stats.spec.target_rolled_back + again.stats.spec.target_rolled_back);
        expect(again.stats.spec).toEqual({ ...r.stats.spec, draft_ms: again.stats.spec.draft_ms, verify_ms: again.stats.spec.verify_ms });
      } finally { s.dispose(); }
    }
  }, 60_000);
});

/**
 * A CPU engine with a small batch (maxSequences) and a WebGPU-like token budget per forward
 * (the CPU engine's own, maxContext x maxSequences, no batch of whole sequences can exceed),
 * recording each forward's [sequences, tokens]. Its page pool holds the program's maxSequences.
 */
class LimitedCpu extends CpuEngine {
  override readonly maxTokensPerForward: number;
  readonly sizes: [number, number][] = [];
  constructor(g: Graph, w: RandomWeights, p: Program, maxSequences: number, maxTokens: number) {
    super(g, w, p, { maxSequences, kvPages: p.kv.maxSequences * p.kv.pagesPerSequence });
    this.maxTokensPerForward = maxTokens;
  }
  override async forwardBatch(items: readonly BatchItem[], options?: ForwardOptions): Promise<Float32Array[]> {
    this.sizes.push([items.length, items.reduce((a, it) => a + it.tokens.length, 0)]);
    return super.forwardBatch(items, options);
  }
}

describe("the engines' per-forward limits", () => {
  const shape: LlamaShape = { vocab: 32, dim: 16, layers: 3, heads: 2, kvHeads: 1, headDim: 8, ffn: 24, maxContext: 48, pageSize: 4 };
  // Five prompts, some longer than a forward's budget, on engines taking 2 sequences and 6 tokens per forward.
  const prompts = [[1, 2, 3, 1, 2, 3, 1, 2, 3], [5], [7, 7, 7, 7, 9, 4], [2, 9, 2, 9, 2, 9, 2, 9, 2, 9, 2], [3, 1]];
  const SEQS = 2, TOKENS = 6, MAX = 14;
  const limited: MakeEngine = (g, w, p) => new LimitedCpu(g, w, p, SEQS, TOKENS);
  const choices: ProposerChoice[] = [
    { kind: 'self', layers: 1 }, { kind: 'ngram', n: 2 },
    { kind: 'draft', seed: 8, shape: { vocab: 32, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 12, maxContext: 48 } },
  ];

  it('more prompts than maxSequences, batches over maxTokensPerForward: each equals plain greedy decoding of its prompt alone', async () => {
    const g = denseLlama(shape);
    const reference = new CpuEngine(g, new RandomWeights(g.params, 13), schedule(g));
    const want: number[][] = [];
    const targetSizes: [number, number][] = [], draftSizes: [number, number][] = [];
    for (const p of prompts) want.push((await generate(reference, p, { maxTokens: MAX, ignoreEos: true })).tokens);
    for (const choice of choices) for (const [lookahead, adaptive] of [[2, false], [5, false], [4, true]] as const) {
      const s = await specSetup(shape, 13, choice, limited, prompts.length);
      try {
        const got = await speculativeGenerate(s.target, s.proposer, prompts, { maxTokens: MAX, lookahead, adaptive, ignoreEos: true });
        expect(got.sequences.map((q) => q.tokens), `${choice.kind}, K = ${lookahead}${adaptive ? ' adaptive' : ''}`).toEqual(want);
        for (const [m, log] of [[s.target, targetSizes], [s.draft, draftSizes]] as const) {
          if (!m) continue;
          log.push(...(m.engine as LimitedCpu).sizes);
          expect(m.engine.kv.pool.used).toBe(0);
        }
        if (lookahead > 2) expect(got.stats.spec.accepted).toBeGreaterThan(0);
      } finally { s.dispose(); }
    }
    reference.dispose();
    // The engines throw past either limit; the runs met both, target and draft alike.
    for (const sizes of [targetSizes, draftSizes]) {
      expect(sizes.every(([n, t]) => n <= SEQS && t <= TOKENS)).toBe(true);
      expect(sizes.some(([n]) => n === SEQS)).toBe(true);
      expect(sizes.some(([, t]) => t === TOKENS)).toBe(true);
    }
  }, 60_000);

  it('sampled runs are the same under the limits as on engines that take the whole batch at once', async () => {
    const sampling = { temperature: 0.9, topK: 12, seed: 5 };
    for (const choice of [choices[0], choices[2]]) {
      const runs: number[][][] = [];
      for (const make of [limited, cpu]) {
        const s = await specSetup(shape, 13, choice, make, prompts.length);
        try {
          runs.push((await speculativeGenerate(s.target, s.proposer, prompts, { maxTokens: MAX, lookahead: 4, sampling, ignoreEos: true })).sequences.map((q) => q.tokens));
        } finally { s.dispose(); }
      }
      expect(runs[0]).toEqual(runs[1]);
    }
  }, 60_000);
});

describe('forwardGroups', () => {
  it('splits a batch in order into the longest runs within both limits', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 20 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 6, max: 12 }), (lens, maxItems, maxTokens) => {
      const items = lens.map((n, i) => ({ seq: i, tokens: new Array<number>(n).fill(0) }));
      const groups = forwardGroups(items, maxItems, maxTokens);
      expect(groups.flat()).toEqual(items);
      const total = (g: readonly SeqItem[]) => g.reduce((a, it) => a + it.tokens.length, 0);
      for (const [i, g] of groups.entries()) {
        expect(g.length).toBeGreaterThan(0);
        expect(g.length).toBeLessThanOrEqual(maxItems);
        expect(total(g)).toBeLessThanOrEqual(maxTokens);
        // Maximal: the next group's first item would not have fitted.
        if (i + 1 < groups.length) expect(g.length === maxItems || total(g) + groups[i + 1][0].tokens.length > maxTokens).toBe(true);
      }
    }), { numRuns: 200 });
    expect(() => forwardGroups([{ seq: 0, tokens: [1, 2, 3] }], 2, 2)).toThrow(/3 tokens exceeds the limit of 2/);
  });

  it('a split call that fails in a later forward leaves every sequence as it was', async () => {
    const shape: LlamaShape = { vocab: 16, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 12, maxContext: 16, pageSize: 4 };
    const g = denseLlama(shape);
    const p = schedule(g, [], { maxSequences: 4 });
    // Two sequences per forward, 2 pages in the pool: the first forward fills both (seq 0 its first page), the second needs a third.
    const e = new CpuEngine(g, new RandomWeights(g.params, 3), p, { maxSequences: 2, kvPages: 2 });
    const m = new PagedSeqModel(e);
    const seqs = [m.open(), m.open(), m.open()];
    await m.forward([{ seq: seqs[0], tokens: [1] }]);
    await expect(m.forward(seqs.map((seq) => ({ seq, tokens: [2, 3, 4] })))).rejects.toBeInstanceOf(KvPoolExhausted);
    expect(seqs.map((q) => m.length(q))).toEqual([1, 0, 0]);
    e.kv.check();
    expect(e.kv.pool.used).toBe(1);
    m.dispose();
  });
});

describe('prompt lookup', () => {
  it('proposes the continuation of the latest earlier occurrence of the last n tokens', () => {
    expect(lookup([1, 2, 3, 9, 1, 2, 4, 1, 2], 2, 2)).toEqual([4, 1]);
    expect(lookup([1, 2, 3, 9, 1, 2, 4, 1, 2], 2, 1)).toEqual([4]);
    expect(lookup([1, 2, 3, 9, 1, 2, 4, 1, 2], 3, 3)).toEqual([]);
    // Past the end of the context the copy continues from itself: the loop goes on.
    expect(lookup([1, 2, 3, 9, 1, 2, 4, 1, 2], 2, 5)).toEqual([4, 1, 2, 4, 1]);
    expect(lookup([5, 5, 5], 1, 4)).toEqual([5, 5, 5, 5]);
    expect(lookup([7], 1, 2)).toEqual([]);
  });

  it('matches a brute-force search on random contexts', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 30 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), (ctx, n, k) => {
      let start = -1;
      for (let j = 0; j + n < ctx.length; j++) if (ctx.slice(j, j + n).join() === ctx.slice(ctx.length - n).join()) start = j + n;
      // The continuation of the sequence as if it went on repeating from `start`.
      const ext = [...ctx];
      if (start >= 0) while (ext.length < ctx.length + k) ext.push(ext[start + ext.length - ctx.length]);
      expect(lookup(ctx, n, k)).toEqual(start < 0 ? [] : ext.slice(start, start + k));
    }), { numRuns: 300 });
  });
});

describe('adaptive lookahead', () => {
  it('maximises E(K)/cost: long K for cheap, accurate drafts; K = 1 when drafts are never accepted', () => {
    const good = new AdaptiveLookahead(8);
    for (let i = 0; i < 30; i++) { good.observeAcceptance(0, 7, 7); good.observeDraft(0.1, 1); good.observeVerify(10 + (i % 3), 1 + (i % 3)); }
    expect(good.choose(0)).toBe(8);
    const bad = new AdaptiveLookahead(8);
    for (let i = 0; i < 30; i++) { bad.observeAcceptance(0, 0, 1); bad.observeDraft(2, 1); bad.observeVerify(10, 2); }
    expect(bad.choose(0)).toBe(1);
    // An expensive draft with middling acceptance: brute-force the optimum of the same model.
    const mid = new AdaptiveLookahead(8);
    for (let i = 0; i < 50; i++) { mid.observeAcceptance(0, 1, 2); mid.observeDraft(4, 1); mid.observeVerify(10, 3); }
    const a = mid.acceptance(0);
    const best = [1, 2, 3, 4, 5, 6, 7, 8].reduce((b, k) => (expectedTokens(a, k) / (4 * k + 10) > expectedTokens(a, b) / (4 * b + 10) ? k : b), 1);
    expect(mid.choose(0)).toBe(best);
  });

  it('uses measured per-size pass costs: a pass size that is cheap for its tokens (a faster kernel) wins', () => {
    const ad = new AdaptiveLookahead(8);
    // Costs like lavapipe's: linear in the GEMV range, a cheaper tiled matmul from 8 tokens on.
    ad.calibrate([[1, 60], [2, 110], [5, 240], [8, 230], [9, 180]]);
    for (let i = 0; i < 20; i++) { ad.observeAcceptance(0, 9, 10); ad.observeDraft(0.01, 8); }
    expect(ad.choose(0)).toBe(8);
    // With only the line to go by (no per-size costs), the same acceptance picks a short K.
    const lin = new AdaptiveLookahead(8);
    for (let i = 0; i < 20; i++) { lin.observeAcceptance(0, 9, 10); lin.observeDraft(40, 1); lin.observeVerify(60 * (1 + (i % 2)), 1 + (i % 2)); }
    expect(lin.choose(0)).toBeLessThan(4);
  });

  it('expectedTokens is (1 - a^(K+1)) / (1 - a), with the limits at a = 0 and 1', () => {
    expect(expectedTokens(0.5, 3)).toBeCloseTo(1.875, 12);
    expect(expectedTokens(0, 5)).toBe(1);
    expect(expectedTokens(1, 5)).toBe(6);
  });
});
