// SeqModel over a paged engine: every open sequence is a sequence of the engine's KV
// page pool, a batched call is one forward for the whole batch (one dispatch per
// kernel) when it fits the engine's per-forward limits (maxSequences items,
// maxTokensPerForward tokens in all) and otherwise as many forwards as they need
// (`forwardGroups`), and rollback truncates the sequence, returning pages that empty to the
// pool. The engine's accounting (KvSequences.check) stays exact through every
// rollback; test/runtime/speculative*.test.ts check it after each step.
import type { Engine } from '../engine.ts';
import { forwardGroups, SeqModelError, type SeqItem, type SeqModel, type SeqModelStats } from './seqModel.ts';

export class PagedSeqModel implements SeqModel {
  readonly vocab: number;
  readonly maxContext: number;
  readonly maxTokensPerForward: number;
  /** The most items one engine forward takes. */
  readonly maxSequences: number;
  private s = { calls: 0, passes: 0, tokensWritten: 0, tokensRolledBack: 0, ms: 0 };

  constructor(readonly engine: Engine) {
    this.vocab = engine.model.vocab;
    this.maxContext = engine.model.maxContext;
    this.maxTokensPerForward = engine.maxTokensPerForward;
    this.maxSequences = engine.maxSequences;
  }

  open(): number { return this.engine.kv.join(); }

  close(seq: number): void { this.engine.kv.free(seq); }

  length(seq: number): number { return this.engine.kv.length(seq); }

  async forward(items: readonly SeqItem[]): Promise<Float32Array[]> {
    for (const it of items) {
      if (it.tokens.length === 0) throw new SeqModelError(`sequence ${it.seq}: a forward needs at least one token`);
      const end = this.length(it.seq) + it.tokens.length;
      if (end > this.maxContext) throw new SeqModelError(`sequence ${it.seq}: positions up to ${end - 1} fall outside the context of ${this.maxContext}`);
    }
    const groups = forwardGroups(items, this.maxSequences, this.maxTokensPerForward);
    const before = items.map((it) => this.length(it.seq));
    const t0 = performance.now();
    const rows: Float32Array[] = [];
    try {
      for (const g of groups) {
        rows.push(...(await this.engine.forwardBatch(g, { rows: 'all' })));
        this.s.calls++;
      }
    } catch (e) {
      // The failed forward left its own sequences as they were; undo the groups before it too.
      items.forEach((it, i) => { if (this.engine.kv.has(it.seq) && this.length(it.seq) > before[i]) this.engine.kv.truncate(it.seq, before[i]); });
      throw e;
    }
    this.s.passes += items.length;
    this.s.tokensWritten += items.reduce((a, it) => a + it.tokens.length, 0);
    this.s.ms += performance.now() - t0;
    return rows;
  }

  rollback(seq: number, length: number): void {
    const cur = this.length(seq);
    if (!Number.isInteger(length) || length < 0 || length > cur) throw new SeqModelError(`sequence ${seq}: cannot roll back to ${length} tokens; it holds ${cur}`);
    this.engine.kv.truncate(seq, length);
    this.s.tokensRolledBack += cur - length;
  }

  stats(): SeqModelStats { return { ...this.s }; }

  dispose(): void { this.engine.dispose(); }
}
