// Turning one row of logits into a token: greedy, temperature, top-k, top-p,
// seeded. Everything here is plain float64 arithmetic over the logits the
// engine returns, with our own PRNG, so the CPU and WebGPU engines sample the
// same token from the same logits and a seed reproduces a run exactly.
//
// Filter order (as in Hugging Face's generate): logits / temperature, then keep
// the top-k, then keep the smallest most-likely prefix whose probability reaches
// top-p, renormalise, draw. Ties are broken by the lower token id everywhere,
// so top-k = 1 and temperature = 0 both equal `greedy`.

export interface SamplingOptions {
  /** 0 (the default) means greedy. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 or undefined = all. */
  readonly topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 or undefined = all. */
  readonly topP?: number;
  /** Seed of the sampling PRNG (default 0). */
  readonly seed?: number;
}

export interface TokenLogprob { readonly id: number; readonly logprob: number }

type Logits = ArrayLike<number>;

export class SamplingOptionError extends Error {}

/** splitmix32: a tiny, well-mixed 32-bit generator; the same sequence on every engine and platform. */
export class Rng {
  private state: number;
  constructor(seed: number) { this.state = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0; }

  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5, lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

/** The index of the largest logit, the lowest id on ties. NaN logits are never chosen. */
export function greedy(logits: Logits): number {
  let best = -1, max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max || (best < 0 && logits[i] === max)) { max = logits[i]; best = i; }
  if (best < 0) throw new Error('cannot sample: every logit is NaN');
  return best;
}

/** log(softmax(logits)) in float64, computed stably (max subtracted, log-sum-exp). */
export function logSoftmax(logits: Logits, temperature = 1): Float64Array {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i] / temperature);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] / temperature - max);
  // (x - max) - log(sum), not x - (max + log(sum)): the latter loses log(sum)'s digits for large x.
  const logSum = Math.log(sum);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (logits[i] / temperature - max) - logSum;
  return out;
}

/** Ids sorted by descending logit, ties by ascending id. */
function rank(values: Logits, limit = values.length): number[] {
  const ids = Array.from({ length: values.length }, (_, i) => i);
  ids.sort((a, b) => (values[b] - values[a]) || (a - b));
  return limit < ids.length ? ids.slice(0, limit) : ids;
}

/** The n most likely tokens of a logits row with their log-probabilities (temperature 1). */
export function topLogprobs(logits: Logits, n: number): TokenLogprob[] {
  if (n <= 0) return [];
  const lp = logSoftmax(logits);
  return rank(logits, n).map((id) => ({ id, logprob: lp[id] }));
}

export function validateSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0, k = o.topK ?? 0, p = o.topP ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new SamplingOptionError(`temperature must be a finite number >= 0, got ${o.temperature}`);
  if (!Number.isInteger(k) || k < 0) throw new SamplingOptionError(`top-k must be an integer >= 0, got ${o.topK}`);
  if (!(p > 0 && p <= 1)) throw new SamplingOptionError(`top-p must be in (0, 1], got ${o.topP}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new SamplingOptionError(`seed must be an integer, got ${o.seed}`);
}

/**
 * The distribution a non-greedy draw uses: the kept ids (most likely first) and
 * their renormalised probabilities. Exposed so tests can compare draws with it.
 */
export function samplingDistribution(logits: Logits, o: SamplingOptions): { ids: number[]; probs: Float64Array } {
  const t = o.temperature ?? 0;
  if (t === 0) return { ids: [greedy(logits)], probs: Float64Array.of(1) };
  const k = o.topK ?? 0, p = o.topP ?? 1;
  let ids = rank(logits, k > 0 ? k : logits.length);
  // Softmax over the top-k survivors (the max is ids[0]).
  const max = logits[ids[0]] / t;
  let probs = Float64Array.from(ids, (id) => Math.exp(logits[id] / t - max));
  normalise(probs);
  if (p < 1) {
    // The smallest prefix (most likely first) whose mass reaches p.
    let cum = 0, keep = 0;
    while (keep < ids.length && cum < p) cum += probs[keep++];
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    normalise(probs);
  }
  return { ids, probs };
}

function normalise(probs: Float64Array): void {
  let sum = 0;
  for (const q of probs) sum += q;
  for (let i = 0; i < probs.length; i++) probs[i] /= sum;
}

/** A seeded sampler: one PRNG draw per non-greedy token, none for greedy ones. */
export class Sampler {
  private readonly rng: Rng;
  constructor(readonly options: SamplingOptions = {}) {
    validateSampling(options);
    this.rng = new Rng(options.seed ?? 0);
  }

  get isGreedy(): boolean { return (this.options.temperature ?? 0) === 0 || this.options.topK === 1; }

  sample(logits: Logits): number {
    if (this.isGreedy) return greedy(logits);
    const { ids, probs } = samplingDistribution(logits, this.options);
    const u = this.rng.next();
    let cum = 0;
    for (let i = 0; i < ids.length; i++) {
      cum += probs[i];
      if (u < cum) return ids[i];
    }
    return ids[ids.length - 1]; // u landed in the rounding gap at the top
  }
}
