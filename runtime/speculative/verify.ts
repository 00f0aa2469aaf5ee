// Verification: given the target's K+1 logits rows for [last, d1..dK] and the
// drafted tokens d1..dK, decide how many drafts to keep and which token comes
// next. Greedy keeps the longest prefix equal to the target's argmax and then
// takes the target's argmax (a correction, or the bonus token after all K).
// Sampling follows Leviathan et al. (2023): accept d_i with probability
// min(1, p_i(d_i) / q_i(d_i)); at the first rejection draw from the normalised
// max(0, p_i - q_i); after K acceptances draw the bonus token from p_K. The
// output then has exactly the target's distribution.
//
// p and q are the distributions tokens are actually drawn from: softmax of
// logits / temperature, restricted to top-k then top-p and renormalised
// (sampling.ts's samplingDistribution), as full-vocabulary vectors with zeros
// outside the kept set. The draft must draw with the same options so its q is
// the distribution its tokens really came from. A deterministic proposer
// (prompt lookup, a greedy draft) has q = a point mass on its token (null here).
import { greedy, Rng, samplingDistribution, type SamplingOptions } from '../sampling.ts';

export interface Verdict {
  /** Drafted tokens kept (0..K). */
  readonly accepted: number;
  /** The token after them: a correction at the first rejection, else the bonus token. */
  readonly next: number;
}

/** The distribution a sampler with these options draws from, over the whole vocabulary. */
export function distribution(logits: ArrayLike<number>, o: SamplingOptions): Float64Array {
  const { ids, probs } = samplingDistribution(logits, o);
  const out = new Float64Array(logits.length);
  ids.forEach((id, i) => { out[id] = probs[i]; });
  return out;
}

/** Draws an index from a (possibly unnormalised, non-negative) weight vector. */
export function drawFrom(w: ArrayLike<number>, rng: Rng): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i];
  if (!(sum > 0)) throw new Error('cannot draw from an all-zero distribution');
  const u = rng.next() * sum;
  let cum = 0, last = -1;
  for (let i = 0; i < w.length; i++) {
    if (w[i] <= 0) continue;
    cum += w[i];
    last = i;
    if (u < cum) return i;
  }
  return last; // u landed in the rounding gap at the top
}

/** Greedy verification over K+1 rows of logits (row i predicts the token after draft i). */
export function verifyGreedy(rows: Float32Array, vocab: number, drafted: readonly number[]): Verdict {
  const K = drafted.length;
  if (rows.length !== (K + 1) * vocab) throw new Error(`verification needs ${K + 1} rows of ${vocab} logits, got ${rows.length / vocab}`);
  for (let i = 0; i < K; i++) {
    const t = greedy(rows.subarray(i * vocab, (i + 1) * vocab));
    if (t !== drafted[i]) return { accepted: i, next: t };
  }
  return { accepted: K, next: greedy(rows.subarray(K * vocab)) };
}

/** The acceptance rule, separate so a test can swap in a broken one and watch the check fail. */
export type AcceptRule = (p: number, q: number, u: number) => boolean;
export const leviathanAccept: AcceptRule = (p, q, u) => u < Math.min(1, p / q);

/** The residual a rejection draws from; also swappable for the same reason. */
export type ResidualRule = (p: Float64Array, q: Float64Array | null, rejected: number) => Float64Array;
export const leviathanResidual: ResidualRule = (p, q, rejected) => {
  const r = new Float64Array(p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    r[i] = Math.max(0, p[i] - (q ? q[i] : i === rejected ? 1 : 0));
    sum += r[i];
  }
  // A rejection implies p(x) < q(x) somewhere, so the residual has mass; only
  // rounding can empty it, and then p itself is the right fallback.
  return sum > 0 ? r : p;
};

export interface SampleVerifyRules { readonly accept?: AcceptRule; readonly residual?: ResidualRule }

/**
 * Rejection-sampling verification. `p` holds the target's K+1 distributions,
 * `q[i]` the draft's distribution for drafted[i] (null: a point mass on it).
 * Uses one uniform per tested draft plus one for the final draw.
 */
export function verifySample(p: readonly Float64Array[], drafted: readonly number[], q: readonly (Float64Array | null)[], rng: Rng, rules: SampleVerifyRules = {}): Verdict {
  const K = drafted.length;
  if (p.length !== K + 1 || q.length !== K) throw new Error(`verification needs ${K + 1} target and ${K} draft distributions, got ${p.length} and ${q.length}`);
  const accept = rules.accept ?? leviathanAccept, residual = rules.residual ?? leviathanResidual;
  for (let i = 0; i < K; i++) {
    const x = drafted[i];
    const qx = q[i] ? q[i]![x] : 1;
    if (!(qx > 0)) throw new Error(`draft token ${x} has probability 0 under the draft's own distribution`);
    if (accept(p[i][x], qx, rng.next())) continue;
    return { accepted: i, next: drawFrom(residual(p[i], q[i], x), rng) };
  }
  return { accepted: K, next: drawFrom(p[K], rng) };
}
