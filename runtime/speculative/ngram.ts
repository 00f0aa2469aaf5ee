// Prompt lookup: no model at all. The last N tokens of the context are looked
// up earlier in the context; the tokens that followed their latest earlier
// occurrence are the proposal. Repetitive text (code, quoted passages, a model
// stuck in a loop) gets long accepted runs for the price of a string search.
import type { SamplingOptions } from '../sampling.ts';
import type { Proposal, ProposeRequest, Proposer, ProposerStats } from './proposer.ts';

/** The k tokens continuing the latest earlier occurrence of the context's last n tokens ([] when none). */
export function lookup(context: readonly number[], n: number, k: number): number[] {
  const L = context.length;
  if (n < 1 || L < n + 1 || k < 1) return [];
  // j: start of a candidate occurrence; it must end before the final n-gram starts
  // to be "earlier", and leave at least one token after it to propose.
  for (let j = L - n - 1; j >= 0; j--) {
    let match = true;
    for (let i = 0; i < n; i++) if (context[j + i] !== context[L - n + i]) { match = false; break; }
    if (!match) continue;
    // Copy what followed; past the end of the context keep copying from the copy itself,
    // so a loop of period p still yields k tokens (the text repeating as it has).
    const out: number[] = [];
    for (let i = j + n; out.length < k; i++) out.push(i < L ? context[i] : out[i - L]);
    return out;
  }
  return [];
}

export class NgramProposer implements Proposer {
  readonly kind = 'ngram' as const;
  readonly description: string;
  private s = { ms: 0, tokens: 0 };

  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`ngram size must be an integer >= 1, got ${n}`);
    this.description = `prompt lookup (n = ${n})`;
  }

  configure(_sampling: SamplingOptions): void {}
  open(_seq: number, _index: number): void {}
  close(_seq: number): void {}
  limit(_contextLength: number): number { return Number.MAX_SAFE_INTEGER; }

  async propose(requests: readonly ProposeRequest[]): Promise<Proposal[]> {
    const t0 = performance.now();
    const out = requests.map((r) => {
      const tokens = lookup(r.context, this.n, r.k);
      return { tokens, q: tokens.map(() => null) };
    });
    this.s.ms += performance.now() - t0;
    this.s.tokens += out.reduce((a, p) => a + p.tokens.length, 0);
    return out;
  }

  sync(_seq: number, _context: readonly number[]): void {}

  stats(): ProposerStats { return { ...this.s, passes: 0, rolledBack: 0 }; }
}
