// Rejection sampling keeps the target's distribution. On a 5-token vocabulary
// the joint distribution of the first three sampled tokens is computed exactly
// from the target (1 + 5 + 25 forwards), and N fixed-seed speculative runs are
// tested against it with Pearson's chi-square at significance 0.001 (cells with
// an expected count under 5 pooled; critical value by Wilson-Hilferty). Each run
// generates 4 tokens with K = 2 so that its first speculative pass drafts both
// t2 and t3 (a run of only 3 tokens would cap K at 1): t3 is then a second draft
// accepted or corrected at row 2 of the pass, or a later pass's token after a
// rejection at row 1. The test asserts that every draft-model run had such a
// pass and that many accepted both drafts. (K = 3 would draft t4 too, outside
// the compared tokens, for 60% more run time.) The same test run with
// deliberately broken rules (accept every draft; draw rejections from p instead
// of max(0, p - q); the inverted ratio q/p) must fail it, which shows the test
// has the power to catch a wrong rule at this sample size.
// Measured (statistic vs critical value): temperature 1, N = 1500: correct 49.4
// vs 103.5 (63 dof); residual p with 750 samples 144.9 vs 81.5; with 300
// samples accept-all 159.0 and ratio q/p 155.6 vs 37.8. Temperature 0.7, top-k
// 4, top-p 0.9: correct 19.4 vs 52.7 (25 dof); residual p 190.5 vs 51.3;
// accept-all 1250.7 and q/p 1261.3 vs 36.3. Prompt lookup: correct 31.3 vs
// 103.5, accept-all 603.4 vs 37.8. Passes accepting 2 drafts: 630, 324 and 124
// of 1500 runs. The seeds are fixed, so these numbers reproduce exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import type { Rng, SamplingOptions } from '../../runtime/sampling.ts';
import { speculativeGenerate } from '../../runtime/speculative/decode.ts';
import type { Proposal, ProposeRequest, Proposer } from '../../runtime/speculative/proposer.ts';
import { distribution, verifySample, type SampleVerifyRules } from '../../runtime/speculative/verify.ts';
import type { LlamaShape } from '../fixtures/denseLlama.ts';
import { specSetup, type MakeEngine, type ProposerChoice, type SpecSetup } from '../fixtures/specSetup.ts';

const cpu: MakeEngine = (g, w, p) => new CpuEngine(g, w, p);
const V = 5;
const SHAPE: LlamaShape = { vocab: V, dim: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, ffn: 24, maxContext: 16 };
const DRAFT: ProposerChoice = { kind: 'draft', seed: 99, shape: { vocab: V, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 12, maxContext: 16 } };
const PROMPT = [1, 3, 2];
const N = 1500;
// K drafts per pass. Only the first 3 tokens are compared, but a run generates GENERATE = K + 2, so
// the first pass after the prompt's drafts all K (with 3 tokens, the cap of tokens still wanted made K 1).
const K = 2, GENERATE = K + 2;
const ALPHA = 0.001, Z = 3.0902; // the standard normal's upper 0.001 quantile

/** Exact P(t1, t2, t3) under the target alone, indexed t1*V*V + t2*V + t3. */
async function exactJoint(s: SpecSetup, o: SamplingOptions): Promise<Float64Array> {
  const dist = async (ctx: number[]) => {
    s.reference.reset();
    const rows = await s.reference.forward(Int32Array.from(ctx), Int32Array.from(ctx.keys()), { rows: 'last' });
    return distribution(rows, o);
  };
  const joint = new Float64Array(V ** 3);
  const p1 = await dist(PROMPT);
  for (let a = 0; a < V; a++) {
    if (!p1[a]) continue;
    const p2 = await dist([...PROMPT, a]);
    for (let b = 0; b < V; b++) {
      if (!p2[b]) continue;
      const p3 = await dist([...PROMPT, a, b]);
      for (let c = 0; c < V; c++) joint[a * V * V + b * V + c] = p1[a] * p2[b] * p3[c];
    }
  }
  return joint;
}

/** Pearson's statistic with small cells pooled, and the critical value at ALPHA. */
function chiSquare(counts: Float64Array, probs: Float64Array, n: number): { stat: number; critical: number; dof: number } {
  let stat = 0, bins = 0, poolE = 0, poolO = 0;
  for (let i = 0; i < probs.length; i++) {
    const e = probs[i] * n;
    if (e < 5) { poolE += e; poolO += counts[i]; continue; }
    stat += (counts[i] - e) ** 2 / e;
    bins++;
  }
  if (poolE > 0) { stat += (poolO - poolE) ** 2 / Math.max(poolE, 1e-9); bins++; }
  const k = bins - 1;
  const critical = k * (1 - 2 / (9 * k) + Z * Math.sqrt(2 / (9 * k))) ** 3;
  return { stat, critical, dof: k };
}

/** A proposer that counts its proposals of two or more drafts (one proposal per sequence per pass). */
class CountingProposer implements Proposer {
  multi = 0;
  constructor(private readonly inner: Proposer) {}
  get kind() { return this.inner.kind; }
  get description() { return this.inner.description; }
  configure(o: SamplingOptions) { this.inner.configure(o); }
  open(seq: number, index: number) { this.inner.open(seq, index); }
  close(seq: number) { this.inner.close(seq); }
  limit(n: number) { return this.inner.limit(n); }
  sync(seq: number, context: readonly number[]) { this.inner.sync(seq, context); }
  stats() { return this.inner.stats(); }
  async propose(requests: readonly ProposeRequest[]): Promise<Proposal[]> {
    const out = await this.inner.propose(requests);
    this.multi += out.filter((p) => p.tokens.length >= 2).length;
    return out;
  }
}

interface Sampled {
  readonly counts: Float64Array;
  /** Passes that proposed at least 2 drafts. */
  readonly multi: number;
  /** Passes that accepted at least 2 drafts (t3 was then the second draft, judged at its own row). */
  readonly deep: number;
}

async function sampleJoint(s: SpecSetup, o: SamplingOptions, rules?: SampleVerifyRules, n = N): Promise<Sampled> {
  const counts = new Float64Array(V ** 3);
  const proposer = new CountingProposer(s.proposer);
  let deep = 0;
  for (let seed = 0; seed < n; seed++) {
    const r = await speculativeGenerate(s.target, proposer, [PROMPT], {
      maxTokens: GENERATE, lookahead: K, sampling: { ...o, seed }, ignoreEos: true, rules, onStep: (a) => { if (a[0] >= 2) deep++; },
    });
    const [a, b, c] = r.sequences[0].tokens;
    counts[a * V * V + b * V + c]++;
  }
  return { counts, multi: proposer.multi, deep };
}

// [name, rule, samples]: the grossly wrong rules fail by a wide margin with fewer samples.
const BROKEN: [string, SampleVerifyRules, number][] = [
  ['accept every draft', { accept: () => true }, N / 5],
  ['draw rejections from p, not max(0, p - q)', { residual: (p) => p }, N / 2],
  ['accept with min(1, q/p)', { accept: (p, q, u) => u < Math.min(1, q / p) }, N / 5],
];

describe(`rejection sampling: chi-square at ${ALPHA} over ${N} fixed-seed runs (vocabulary ${V}, first 3 of ${GENERATE} tokens, K = ${K})`, () => {
  for (const [label, o] of [['temperature 1', { temperature: 1 }], ['temperature 0.7, top-k 4, top-p 0.9', { temperature: 0.7, topK: 4, topP: 0.9 }]] as const) {
    it(`${label}: an unrelated draft model keeps the target's distribution; broken rules fail`, async () => {
      const s = await specSetup(SHAPE, 4, DRAFT, cpu);
      try {
        const exact = await exactJoint(s, o);
        const run = await sampleJoint(s, o);
        // A draft model always drafts all it is asked for: every run's first pass had K >= 2 drafts.
        expect(run.multi, 'passes that proposed 2 or more drafts').toBeGreaterThanOrEqual(N);
        expect(run.deep, 'passes that accepted 2 or more drafts').toBeGreaterThan(N / 20);
        const good = chiSquare(run.counts, exact, N);
        expect(good.stat, `chi-square ${good.stat.toFixed(1)} (${good.dof} dof) vs critical ${good.critical.toFixed(1)}`).toBeLessThan(good.critical);
        for (const [name, rules, n] of BROKEN) {
          const bad = chiSquare((await sampleJoint(s, o, rules, n)).counts, exact, n);
          expect(bad.stat, `broken rule '${name}': chi-square ${bad.stat.toFixed(1)} should exceed ${bad.critical.toFixed(1)}`).toBeGreaterThan(bad.critical);
        }
      } finally { s.dispose(); }
    }, 120_000);
  }

  it('prompt lookup (a point-mass proposal) keeps the target distribution too', async () => {
    const s = await specSetup(SHAPE, 4, { kind: 'ngram', n: 1 }, cpu);
    try {
      const o = { temperature: 1 };
      const exact = await exactJoint(s, o);
      const run = await sampleJoint(s, o);
      expect(run.multi, 'passes that proposed 2 or more drafts').toBeGreaterThan(N / 4);
      expect(run.deep, 'passes that accepted 2 or more drafts').toBeGreaterThan(N / 20);
      const good = chiSquare(run.counts, exact, N);
      expect(good.stat, `chi-square ${good.stat.toFixed(1)} vs ${good.critical.toFixed(1)}`).toBeLessThan(good.critical);
      const bad = chiSquare((await sampleJoint(s, o, BROKEN[0][1], BROKEN[0][2])).counts, exact, BROKEN[0][2]);
      expect(bad.stat).toBeGreaterThan(bad.critical);
    } finally { s.dispose(); }
  }, 120_000);
});

// The rule itself, computed rather than sampled: for random distributions p0, p1 (target)
// and q (draft) over 4 tokens, zeros included as top-k/top-p leave them, enumerate the
// drafted token d with weight q(d) and both uniforms on a G x G midpoint grid, run
// verifySample, and add up the probability of each (first, second) token pair (a rejected
// pass's second token comes from the next pass, a fresh draw from p1). The result must be
// p0(x) p1(y) to within the grid resolution (1.5 / G); the broken rules miss by more.
describe('verifySample: exact enumeration on a grid (K = 1)', () => {
  const G = 120;
  const distArb = fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0.05, max: 1, noNaN: true })), { minLength: 4, maxLength: 4 })
    .filter((w) => w.some((x) => x > 0)).map((w) => { const s = w.reduce((a, b) => a + b, 0); return Float64Array.from(w, (x) => x / s); });

  function joint(p0: Float64Array, p1: Float64Array, q: Float64Array, rules?: SampleVerifyRules): Float64Array {
    const out = new Float64Array(16);
    for (let d = 0; d < 4; d++) {
      if (!q[d]) continue;
      for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) {
        const us = [(i + 0.5) / G, (j + 0.5) / G];
        const rng = { next: () => us.shift()! } as unknown as Rng;
        const v = verifySample([p0, p1], [d], [q], rng, rules);
        const w = q[d] / (G * G);
        if (v.accepted === 1) out[d * 4 + v.next] += w;
        else for (let y = 0; y < 4; y++) out[v.next * 4 + y] += w * p1[y];
      }
    }
    return out;
  }

  const worst = (a: Float64Array, p0: Float64Array, p1: Float64Array) => Math.max(...Array.from(a, (v, k) => Math.abs(v - p0[k >> 2] * p1[k & 3])));

  it('the output pair has exactly the target distribution p0 x p1', () => {
    fc.assert(fc.property(distArb, distArb, distArb, (p0, p1, q) => {
      expect(worst(joint(p0, p1, q), p0, p1)).toBeLessThan(1.5 / G);
    }), { numRuns: 25 });
  });

  it('the broken rules do not (on a case where p and q differ)', () => {
    const p0 = Float64Array.of(0.6, 0.3, 0.1, 0), p1 = Float64Array.of(0.25, 0.25, 0.25, 0.25), q = Float64Array.of(0.1, 0.2, 0.3, 0.4);
    expect(worst(joint(p0, p1, q), p0, p1)).toBeLessThan(1.5 / G);
    for (const [, rules] of BROKEN) expect(worst(joint(p0, p1, q, rules), p0, p1)).toBeGreaterThan(0.03); // measured: 0.125, 0.035, 0.115 (correct: 7e-15)
  });
});
