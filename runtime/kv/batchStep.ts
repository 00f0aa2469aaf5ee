// One forward step for a batch of sequences: their new tokens flattened in batch order
// (sequence 0's tokens, then sequence 1's, ...), each token's position and pool slot,
// and the batch's block tables in CSR form (what the kernels and the interpreter read).
import type { KvTables } from '../../program/kv.ts';
import { KvPoolExhausted, KvSequenceError, type KvSequences, type PageCopy } from './sequences.ts';

export interface BatchItem {
  readonly seq: number;
  readonly tokens: ArrayLike<number>;
}

export interface BatchStep {
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly tables: KvTables;
  readonly copies: PageCopy[];
  /** Row range [start, end) of each item's tokens in the step. */
  readonly rows: readonly (readonly [number, number])[];
}

/**
 * Reserves room for every item and lays the step out. All or nothing: the pages the
 * whole batch needs are counted first, so an exhausted pool changes no sequence (a
 * half-done reservation could have swapped a shared page for a not-yet-copied one).
 */
export function buildBatchStep(seqs: KvSequences, items: readonly BatchItem[]): BatchStep {
  const seen = new Set<number>();
  for (const it of items) {
    if (seen.has(it.seq)) throw new Error(`sequence ${it.seq} appears twice in one batch`);
    seen.add(it.seq);
    if (it.tokens.length === 0) throw new Error(`sequence ${it.seq} has no tokens in this step`);
  }
  for (const it of items) {
    const end = seqs.length(it.seq) + it.tokens.length;
    if (end > seqs.maxLength) throw new KvSequenceError(`sequence ${it.seq} would hold ${end} tokens, over the context of ${seqs.maxLength}`);
  }
  const need = items.reduce((a, it) => a + seqs.pagesNeeded(it.seq, it.tokens.length), 0);
  if (need > seqs.pool.free) throw new KvPoolExhausted(need, seqs.pool.free, seqs.pool.total);
  const res = items.map((it) => seqs.reserve(it.seq, it.tokens));
  const T = items.reduce((a, it) => a + it.tokens.length, 0);
  const tokens = new Int32Array(T), positions = new Int32Array(T), slots = new Int32Array(T), seqOf = new Int32Array(T);
  const indptr = new Int32Array(items.length + 1), lastLen = new Int32Array(items.length);
  const pageLists: number[][] = [];
  const rows: [number, number][] = [];
  let t = 0;
  items.forEach((it, b) => {
    const r = res[b];
    rows.push([t, t + it.tokens.length]);
    for (let i = 0; i < it.tokens.length; i++, t++) {
      tokens[t] = it.tokens[i];
      positions[t] = r.positions[i];
      slots[t] = r.slots[i];
      seqOf[t] = b;
    }
    const pages = seqs.pages(it.seq);
    pageLists.push(pages);
    indptr[b + 1] = indptr[b] + pages.length;
    const len = seqs.length(it.seq);
    lastLen[b] = len - (pages.length - 1) * seqs.pageSize;
  });
  const pages = Int32Array.from(pageLists.flat());
  return { tokens, positions, tables: { slots, seqOf, indptr, pages, lastLen }, copies: res.flatMap((r) => r.copies), rows };
}
