// A draft model as proposer: a smaller model with the target's vocabulary (or
// the target itself with fewer layers: same class, see selfDraft.ts) runs
// autoregressively k steps ahead. Its cache follows the sequence like the
// target's: before proposing, it keeps the longest prefix of what it has
// cached that still agrees with the context (rolling back past rejected
// drafts) and feeds the rest in one forward. Drafting runs in lock-step over
// the batch: round i is one batched draft call for every sequence still drafting
// (the draft model splits it into forwards within its engine's per-forward
// limits, as the target does: seqModel.ts's forwardGroups).
import { greedy, Rng, type SamplingOptions } from '../sampling.ts';
import { commonPrefix, type Proposal, type ProposeRequest, type Proposer, type ProposerKind, type ProposerStats } from './proposer.ts';
import type { SeqItem, SeqModel } from './seqModel.ts';
import { distribution, drawFrom } from './verify.ts';

interface DraftSeq {
  /** The draft model's sequence id. */
  readonly id: number;
  /** Tokens in the draft's cache, in order (its length is the cache length). */
  fed: number[];
  readonly rng: Rng;
}

export class DraftProposer implements Proposer {
  private readonly seqs = new Map<number, DraftSeq>();
  private sampling: SamplingOptions = {};
  private s = { ms: 0, tokens: 0, passes: 0, rolledBack: 0 };

  constructor(readonly model: SeqModel, readonly kind: ProposerKind, readonly description: string) {}

  private get isGreedy(): boolean { return (this.sampling.temperature ?? 0) === 0 || this.sampling.topK === 1; }

  configure(sampling: SamplingOptions): void { this.sampling = sampling; }

  open(seq: number, index: number): void {
    // Its own stream, derived from the seed and the batch index, so drafting never shifts the verifier's draws.
    const rng = new Rng(((this.sampling.seed ?? 0) ^ 0x5bd1e995) + index * 7919);
    this.seqs.set(seq, { id: this.model.open(), fed: [], rng });
  }

  close(seq: number): void {
    const d = this.seqs.get(seq);
    if (!d) return;
    this.model.close(d.id);
    this.seqs.delete(seq);
  }

  /** Drafting k tokens after L context tokens writes positions up to L + k - 2 into the draft's cache. */
  limit(contextLength: number): number { return Math.max(0, this.model.maxContext - contextLength + 1); }

  sync(seq: number, context: readonly number[]): void {
    const d = this.state(seq);
    // Keep at most context.length - 1 tokens: the last one must be fed again to get the next distribution.
    const keep = Math.min(commonPrefix(d.fed, context), context.length - 1);
    if (keep < d.fed.length) {
      this.s.rolledBack += d.fed.length - keep;
      this.model.rollback(d.id, keep);
      d.fed.length = keep;
    }
  }

  async propose(requests: readonly ProposeRequest[]): Promise<Proposal[]> {
    const t0 = performance.now();
    const V = this.model.vocab, chunk = this.model.maxTokensPerForward;
    const out = requests.map(() => ({ tokens: [] as number[], q: [] as (Float64Array | null)[] }));
    // Catch up: feed each sequence's unfed context; long prefills go in chunks, only the last row is used.
    let pending = requests.map((r, i) => {
      this.sync(r.seq, r.context);
      const d = this.state(r.seq);
      return { i, d, rest: r.context.slice(d.fed.length) as number[] };
    });
    let rows = new Map<number, Float32Array>();
    while (pending.length) {
      const items: SeqItem[] = pending.map((p) => ({ seq: p.d.id, tokens: p.rest.slice(0, chunk) }));
      const res = await this.forward(items);
      pending.forEach((p, j) => {
        p.d.fed.push(...items[j].tokens);
        p.rest = p.rest.slice(chunk);
        if (!p.rest.length) rows.set(p.i, res[j].subarray(res[j].length - V));
      });
      pending = pending.filter((p) => p.rest.length > 0);
    }
    // Draft: round r draws token r from the last row, then feeds it unless it was the last one asked for.
    let active = requests.map((_, i) => i).filter((i) => requests[i].k > 0);
    while (active.length) {
      const feed: number[] = [];
      for (const i of active) {
        const row = rows.get(i)!;
        let tok: number;
        if (this.isGreedy) { tok = greedy(row); out[i].q.push(null); }
        else { const q = distribution(row, this.sampling); tok = drawFrom(q, this.state(requests[i].seq).rng); out[i].q.push(q); }
        out[i].tokens.push(tok);
        if (out[i].tokens.length < requests[i].k) feed.push(i);
      }
      active = feed;
      if (!active.length) break;
      const res = await this.forward(active.map((i) => ({ seq: this.state(requests[i].seq).id, tokens: [out[i].tokens.at(-1)!] })));
      rows = new Map();
      active.forEach((i, j) => { this.state(requests[i].seq).fed.push(out[i].tokens.at(-1)!); rows.set(i, res[j]); });
    }
    this.s.ms += performance.now() - t0;
    this.s.tokens += out.reduce((a, p) => a + p.tokens.length, 0);
    return out;
  }

  stats(): ProposerStats { return { ...this.s }; }

  private async forward(items: SeqItem[]): Promise<Float32Array[]> {
    this.s.passes += items.length;
    return this.model.forward(items);
  }

  private state(seq: number): DraftSeq {
    const d = this.seqs.get(seq);
    if (!d) throw new Error(`the draft has no sequence ${seq}: open it first`);
    return d;
  }
}
