// Adaptive lookahead: pick K for each step to maximise expected tokens per unit
// of time. Under Leviathan et al.'s model (each draft accepted independently
// with probability a) one pass with lookahead K yields
//     E(K) = (1 - a^(K+1)) / (1 - a)
// tokens, and costs
//     C(K) = K * draft_ms + verify_ms(K + 1),
// where draft_ms is the measured time to draft one token and verify_ms(n) is
// the measured cost of a target pass scoring n tokens: a running mean per n,
// interpolated between the n's measured (or given by `calibrate`), and a line
// v0 + v1 * n fitted to all passes outside them. Per-n costs matter: a pass is
// not linear in n (WebGPU switches from GEMV to a tiled matmul at 8 tokens). The
// acceptance rate is a running estimate per sequence (exponentially forgotten
// counts with a weak prior), the costs are shared by all sequences. K never
// drops below 1 so the acceptance estimate keeps being refreshed.

/** Expected tokens per target pass for acceptance rate a and lookahead k. */
export function expectedTokens(a: number, k: number): number {
  if (a >= 1) return k + 1;
  if (a <= 0) return 1;
  return (1 - a ** (k + 1)) / (1 - a);
}

const FORGET = 0.9;

export class AdaptiveLookahead {
  private readonly acc = new Map<number, { accepted: number; tested: number }>();
  private draftMs = { sum: 0, n: 0 };
  // Forgetful least-squares sums for verify_ms(n) = v0 + v1 * n.
  private v = { w: 0, x: 0, y: 0, xx: 0, xy: 0 };
  /** Running mean pass cost per number of tokens scored. */
  private readonly perN = new Map<number, { sum: number; n: number }>();
  /** Lookaheads chosen, for the mean reported in stats. */
  private chosen = { sum: 0, n: 0 };

  constructor(readonly kMax: number, readonly kStart = Math.min(4, kMax)) {
    if (!Number.isInteger(kMax) || kMax < 1) throw new Error(`adaptive lookahead needs a maximum K >= 1, got ${kMax}`);
  }

  /** The running acceptance estimate of a sequence (prior: 1 of 2). */
  acceptance(seq: number): number {
    const c = this.acc.get(seq) ?? { accepted: 0, tested: 0 };
    return (c.accepted + 1) / (c.tested + 2);
  }

  /** The K that maximises E(K) / C(K), once both costs have been measured. */
  choose(seq: number): number {
    let k = this.kStart;
    const v = this.verifyModel();
    if (this.draftMs.n > 0 && v) {
      const a = this.acceptance(seq), td = this.draftMs.sum / this.draftMs.n;
      let best = -Infinity;
      for (let K = 1; K <= this.kMax; K++) {
        const cost = K * td + Math.max(1e-6, this.verifyCost(K + 1, v));
        const rate = expectedTokens(a, K) / cost;
        if (rate > best + 1e-12) { best = rate; k = K; }
      }
    }
    this.chosen.sum += k;
    this.chosen.n++;
    return k;
  }

  /** Records one step of one sequence: how many drafts were judged and kept. */
  observeAcceptance(seq: number, accepted: number, tested: number): void {
    const c = this.acc.get(seq) ?? { accepted: 0, tested: 0 };
    this.acc.set(seq, { accepted: FORGET * c.accepted + accepted, tested: FORGET * c.tested + tested });
  }

  /** Records proposer time for `tokens` drafted tokens. */
  observeDraft(ms: number, tokens: number): void {
    if (tokens <= 0) return;
    this.draftMs = { sum: FORGET * this.draftMs.sum + ms, n: FORGET * this.draftMs.n + tokens };
  }

  /** Seeds pass costs measured beforehand (tokens scored -> ms), e.g. by a benchmark's calibration. */
  calibrate(costs: Iterable<readonly [number, number]>): void {
    for (const [n, ms] of costs) this.observeVerify(ms, n);
  }

  /** Records a target pass that scored `tokens` tokens in `ms`. */
  observeVerify(ms: number, tokens: number): void {
    const c = this.perN.get(tokens) ?? { sum: 0, n: 0 };
    this.perN.set(tokens, { sum: FORGET * c.sum + ms, n: FORGET * c.n + 1 });
    const v = this.v;
    this.v = { w: FORGET * v.w + 1, x: FORGET * v.x + tokens, y: FORGET * v.y + ms, xx: FORGET * v.xx + tokens * tokens, xy: FORGET * v.xy + tokens * ms };
  }

  meanK(): number { return this.chosen.n ? this.chosen.sum / this.chosen.n : this.kStart; }

  forget(seq: number): void { this.acc.delete(seq); }

  /** Pass cost for n tokens: measured, else interpolated between measured neighbours, else the fitted line. */
  private verifyCost(n: number, line: { v0: number; v1: number }): number {
    const at = (k: number) => { const c = this.perN.get(k)!; return c.sum / c.n; };
    if (this.perN.has(n)) return at(n);
    const ns = [...this.perN.keys()].sort((x, y) => x - y);
    const lo = ns.filter((k) => k < n).at(-1), hi = ns.find((k) => k > n);
    if (lo !== undefined && hi !== undefined) return at(lo) + ((at(hi) - at(lo)) * (n - lo)) / (hi - lo);
    return line.v0 + line.v1 * n;
  }

  private verifyModel(): { v0: number; v1: number } | null {
    const { w, x, y, xx, xy } = this.v;
    if (w <= 0) return null;
    const mx = x / w, my = y / w, varx = xx / w - mx * mx;
    // Too little spread in the pass sizes to fit a slope: treat a pass as costing its mean.
    if (varx < 1e-3) return { v0: my, v1: 0 };
    const v1 = Math.max(0, (xy / w - mx * my) / varx);
    return { v0: my - v1 * mx, v1 };
  }
}
