// Sampling: greedy and its equivalents, seeded determinism, top-k / top-p set
// rules as properties, and the draw distribution against an exact brute-force
// computation on tiny vocabularies.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { greedy, logSoftmax, Rng, Sampler, samplingDistribution, topLogprobs, validateSampling } from '../../runtime/sampling.ts';

// Logits drawn from a small grid so ties are common (tie-breaking must be exercised).
const logitsArb = (min = 1, max = 12) => fc.array(fc.integer({ min: -8, max: 8 }).map((x) => x / 2), { minLength: min, maxLength: max });
const tempArb = fc.double({ min: 0.05, max: 3, noNaN: true });

describe('greedy and its equivalents', () => {
  it('picks the largest logit, the lowest id on ties', () => {
    expect(greedy([1, 3, 3, 2])).toBe(1);
    expect(greedy([-Infinity, -Infinity])).toBe(0);
    expect(greedy([NaN, 0.5, NaN])).toBe(1);
    expect(() => greedy([NaN])).toThrow(/NaN/);
  });

  it('top-k = 1 and temperature 0 both equal greedy, whatever the seed', () => {
    fc.assert(fc.property(logitsArb(), tempArb, fc.integer(), fc.double({ min: 0.01, max: 1, noNaN: true }), (logits, temperature, seed, topP) => {
      const g = greedy(logits);
      expect(new Sampler({ temperature, topK: 1, seed, topP }).sample(logits)).toBe(g);
      expect(new Sampler({ temperature: 0, seed }).sample(logits)).toBe(g);
      expect(samplingDistribution(logits, { temperature, topK: 1 }).ids).toEqual([g]);
    }));
  });
});

describe('seeded determinism', () => {
  it('the same seed gives the same token sequence; the PRNG stays in [0, 1)', () => {
    fc.assert(fc.property(logitsArb(2), tempArb, fc.integer(), (logits, temperature, seed) => {
      const a = new Sampler({ temperature, seed }), b = new Sampler({ temperature, seed });
      const run = (s: Sampler) => Array.from({ length: 20 }, () => s.sample(logits));
      expect(run(a)).toEqual(run(b));
    }));
    const r = new Rng(42);
    for (let i = 0; i < 10000; i++) { const u = r.next(); expect(u >= 0 && u < 1).toBe(true); }
  });

  it('different seeds give different streams', () => {
    const seq = (seed: number) => { const r = new Rng(seed); return Array.from({ length: 8 }, () => r.nextU32()); };
    expect(seq(1)).not.toEqual(seq(2));
    expect(seq(0)).toEqual(seq(0));
  });
});

describe('top-k and top-p sets', () => {
  it('top-k keeps exactly the k most likely ids, ties by lower id', () => {
    fc.assert(fc.property(logitsArb(), tempArb, fc.integer({ min: 1, max: 14 }), (logits, temperature, k) => {
      const { ids } = samplingDistribution(logits, { temperature, topK: k });
      expect(ids.length).toBe(Math.min(k, logits.length));
      const kept = new Set(ids);
      for (const i of ids) for (let j = 0; j < logits.length; j++) {
        if (!kept.has(j)) expect(logits[i] > logits[j] || (logits[i] === logits[j] && i < j)).toBe(true);
      }
    }));
  });

  it('top-p keeps the smallest most-likely set whose mass reaches p', () => {
    // p = 1 means no top-p filter at all (every token stays, even ones of probability ~0).
    fc.assert(fc.property(logitsArb(), tempArb, fc.double({ min: 0.01, max: 1, maxExcluded: true, noNaN: true }), (logits, temperature, p) => {
      const full = samplingDistribution(logits, { temperature });
      const cut = samplingDistribution(logits, { temperature, topP: p });
      expect(cut.ids).toEqual(full.ids.slice(0, cut.ids.length)); // a most-likely prefix
      const mass = (n: number) => full.probs.slice(0, n).reduce((a, b) => a + b, 0);
      const n = cut.ids.length;
      // Reaches p (unless the whole set's rounded mass falls just short), and one fewer token would not.
      if (n < full.ids.length) expect(mass(n)).toBeGreaterThanOrEqual(p);
      expect(mass(n - 1)).toBeLessThan(p);
      expect(cut.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }));
  });

  it('sampled ids always come from the kept set', () => {
    fc.assert(fc.property(logitsArb(2), tempArb, fc.integer({ min: 0, max: 5 }), fc.double({ min: 0.05, max: 1, noNaN: true }), fc.integer(), (logits, temperature, topK, topP, seed) => {
      const { ids } = samplingDistribution(logits, { temperature, topK, topP });
      const s = new Sampler({ temperature, topK, topP, seed });
      for (let i = 0; i < 10; i++) expect(ids).toContain(s.sample(logits));
    }));
  });
});

/** Independent oracle: enumerate every subset of the top-k set, keep the smallest one reaching p with the most mass. */
function bruteForce(logits: number[], t: number, k: number, p: number): Map<number, number> {
  const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a]).slice(0, k || logits.length);
  const w = order.map((i) => Math.exp(logits[i] / t));
  const z = w.reduce((a, b) => a + b, 0);
  let best: number[] = [], bestMass = -1;
  for (let mask = 1; mask < 1 << order.length; mask++) {
    const members = order.map((_, j) => j).filter((j) => mask & (1 << j));
    const mass = members.reduce((a, j) => a + w[j] / z, 0);
    if (p < 1 ? mass < p : members.length < order.length) continue; // p = 1 disables the filter: keep the whole top-k set
    if (best.length === 0 || members.length < best.length || (members.length === best.length && mass > bestMass)) { best = members; bestMass = mass; }
  }
  const zs = best.reduce((a, j) => a + w[j], 0);
  return new Map(best.map((j) => [order[j], w[j] / zs]));
}

describe('the draw distribution on tiny vocabularies', () => {
  it('matches the exact computation (distinct logits)', () => {
    const distinct = fc.uniqueArray(fc.integer({ min: -20, max: 20 }), { minLength: 2, maxLength: 6 }).map((a) => a.map((x) => x / 4));
    // p on a coarse grid: a set's mass within rounding of p would make "reaches p" ambiguous.
    const pArb = fc.integer({ min: 1, max: 20 }).map((i) => i / 20);
    fc.assert(fc.property(distinct, tempArb, fc.integer({ min: 0, max: 6 }), pArb, (logits, t, k, p) => {
      const exact = bruteForce(logits, t, k, p);
      const got = samplingDistribution(logits, { temperature: t, topK: k, topP: p });
      expect(new Set(got.ids)).toEqual(new Set(exact.keys()));
      got.ids.forEach((id, i) => expect(got.probs[i]).toBeCloseTo(exact.get(id)!, 12));
    }));
  });

  it('seeded draws have the exact frequencies (within 5 sigma over 20000 draws)', () => {
    const logits = [0.3, -1.2, 1.7, 0.9, -0.4];
    const cases: { temperature: number; topK?: number; topP?: number }[] = [{ temperature: 1 }, { temperature: 0.7, topK: 3 }, { temperature: 1.3, topP: 0.8 }];
    for (const opts of cases) {
      const exact = bruteForce(logits, opts.temperature, opts.topK ?? 0, opts.topP ?? 1);
      const s = new Sampler({ ...opts, seed: 1234 });
      const N = 20000, counts = new Map<number, number>();
      for (let i = 0; i < N; i++) { const id = s.sample(logits); counts.set(id, (counts.get(id) ?? 0) + 1); }
      for (const [id, q] of exact) {
        const sigma = Math.sqrt(N * q * (1 - q));
        expect(Math.abs((counts.get(id) ?? 0) - N * q)).toBeLessThanOrEqual(5 * sigma + 1);
      }
      for (const id of counts.keys()) expect(exact.has(id)).toBe(true);
    }
  });
});

describe('log-softmax and top logprobs', () => {
  it('log-softmax normalises, is shift-invariant and stable for large logits', () => {
    fc.assert(fc.property(logitsArb(), fc.double({ min: -1000, max: 1000, noNaN: true }), (logits, shift) => {
      const a = logSoftmax(logits), b = logSoftmax(logits.map((x) => x + shift));
      expect(a.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 12);
      a.forEach((x, i) => expect(b[i]).toBeCloseTo(x, 8));
    }));
    expect(Array.from(logSoftmax([1e4, 1e4]))).toEqual([-Math.LN2, -Math.LN2]);
  });

  it('top-N logprobs are the N most likely, sorted, with log-softmax values', () => {
    fc.assert(fc.property(logitsArb(), fc.integer({ min: 0, max: 15 }), (logits, n) => {
      const top = topLogprobs(logits, n), lp = logSoftmax(logits);
      expect(top.length).toBe(Math.min(n, logits.length));
      if (n > 0) expect(top[0].id).toBe(greedy(logits));
      for (let i = 1; i < top.length; i++) expect(top[i - 1].logprob).toBeGreaterThanOrEqual(top[i].logprob);
      for (const t of top) expect(t.logprob).toBe(lp[t.id]);
    }));
  });

  it('rejects bad options with clear messages', () => {
    expect(() => validateSampling({ temperature: -1 })).toThrow(/temperature/);
    expect(() => validateSampling({ topK: 1.5 })).toThrow(/top-k/);
    expect(() => validateSampling({ topP: 0 })).toThrow(/top-p/);
    expect(() => validateSampling({ topP: 1.1 })).toThrow(/top-p/);
    expect(() => validateSampling({ seed: 0.5 })).toThrow(/seed/);
  });
});
