// Speculative-decoding statistics (`stats.spec` in `infer run --json`) and the
// table `infer run` prints to stderr.
//
// acceptance_rate = accepted / tested, where `tested` counts the drafts the
// verifier actually judged: each pass judges drafts up to and including the
// first rejection, never the ones after it. That is the estimator of the
// per-token acceptance probability a of Leviathan et al.'s model, the a the
// prediction (1 - a^(K+1)) / (1 - a) expects. accepted / proposed (drafts
// never judged included) is reported too, as accepted_of_proposed.
// predicted_tokens_per_pass averages that formula over the passes with each
// pass's own K (the number actually proposed: adaptive K and prompt lookup
// vary it), so it compares like with like with tokens_per_pass.
import { expectedTokens } from './adaptive.ts';

export interface SpecStats {
  readonly proposer: string;
  /** Fixed K, or the mean K chosen when adaptive. */
  readonly lookahead: number;
  readonly adaptive: boolean;
  /** Target forwards after the prompt's (one per sequence per step). */
  readonly target_passes: number;
  readonly proposed: number;
  readonly tested: number;
  readonly accepted: number;
  readonly acceptance_rate: number;
  readonly accepted_of_proposed: number;
  /** Tokens emitted by those passes (corrections and bonus tokens included) per pass. */
  readonly tokens_per_pass: number;
  readonly predicted_tokens_per_pass: number;
  readonly draft_passes: number;
  readonly draft_ms: number;
  readonly verify_ms: number;
  /** Tokens the target's and the draft's caches discarded on rollback. */
  readonly target_rolled_back: number;
  readonly draft_rolled_back: number;
}

export class SpecCounter {
  passes = 0;
  proposed = 0;
  tested = 0;
  accepted = 0;
  emitted = 0;
  private readonly ks: number[] = [];

  /** One target pass that judged `proposed` drafts, `tested` of them, kept `accepted`, emitted `emitted` tokens. */
  pass(proposed: number, tested: number, accepted: number, emitted: number): void {
    this.passes++;
    this.proposed += proposed;
    this.tested += tested;
    this.accepted += accepted;
    this.emitted += emitted;
    this.ks.push(proposed);
  }

  get rate(): number { return this.tested ? this.accepted / this.tested : 0; }

  predicted(): number {
    if (!this.ks.length) return 0;
    const a = this.rate;
    return this.ks.reduce((s, k) => s + expectedTokens(a, k), 0) / this.ks.length;
  }
}

export function specStats(c: SpecCounter, o: {
  proposer: string; lookahead: number; adaptive: boolean; draftPasses: number; draftMs: number; verifyMs: number;
  targetRolledBack: number; draftRolledBack: number;
}): SpecStats {
  return {
    proposer: o.proposer, lookahead: o.lookahead, adaptive: o.adaptive, target_passes: c.passes,
    proposed: c.proposed, tested: c.tested, accepted: c.accepted, acceptance_rate: c.rate,
    accepted_of_proposed: c.proposed ? c.accepted / c.proposed : 0,
    tokens_per_pass: c.passes ? c.emitted / c.passes : 0, predicted_tokens_per_pass: c.predicted(),
    draft_passes: o.draftPasses, draft_ms: o.draftMs, verify_ms: o.verifyMs,
    target_rolled_back: o.targetRolledBack, draft_rolled_back: o.draftRolledBack,
  };
}

/** The stderr table of `infer run` without --json. */
export function specTable(s: SpecStats): string {
  const rows: [string, string][] = Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return 'speculative decoding:\n' + rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
