// SeqModel over a paged engine: every open sequence is a sequence of the engine's KV
// page pool, a batched call is one forward for the whole batch (one dispatch per
// kernel), and rollback truncates the sequence, returning pages that empty to the
// pool. The engine's accounting (KvSequences.check) stays exact through every
// rollback; test/runtime/speculative*.test.ts check it after each step.
import type { Engine } from '../engine.ts';
import { SeqModelError, type SeqItem, type SeqModel, type SeqModelStats } from './seqModel.ts';

export class PagedSeqModel implements SeqModel {
  readonly vocab: number;
  readonly maxContext: number;
  readonly maxTokensPerForward: number;
  private s = { calls: 0, passes: 0, tokensWritten: 0, tokensRolledBack: 0, ms: 0 };

  constructor(readonly engine: Engine) {
    this.vocab = engine.model.vocab;
    this.maxContext = engine.model.maxContext;
    this.maxTokensPerForward = engine.maxTokensPerForward;
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
    const t0 = performance.now();
    const rows = await this.engine.forwardBatch(items, { rows: 'all' });
    this.s.calls++;
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
