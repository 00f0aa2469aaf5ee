// Sequences over the page pool: per-sequence block tables (logical page -> physical
// page), growth by whole pages, sliding-window eviction, rollback (truncate), prefix
// sharing with reference counts and copy-on-write of a shared partial page. Engines
// ask `reserve` where a step's tokens go, perform the copies it returns, then run.
import { KvPoolExhausted, PagePool } from './pagePool.ts';

export class KvSequenceError extends Error {}

/** Copy physical page `from` into `to` (every layer, K and V) before the step runs. */
export interface PageCopy { readonly from: number; readonly to: number }

export interface Reservation {
  readonly positions: number[];
  /** Pool slot (page * pageSize + offset) of each new token. */
  readonly slots: number[];
  readonly copies: PageCopy[];
}

interface Sequence {
  /** Physical page of each logical page; -1 once evicted by the sliding window. */
  pages: number[];
  length: number;
  /** The tokens whose K/V the sequence holds, for prefix matching. */
  tokens: number[];
}

export interface KvUsage {
  readonly page_size: number;
  readonly pages_total: number;
  readonly pages_used: number;
  readonly sequences: number;
  /** Slots holding a live token (shared slots counted once). */
  readonly slots_used: number;
}

export class KvSequences {
  readonly pool: PagePool;
  private readonly seqs = new Map<number, Sequence>();
  private nextId = 0;

  constructor(pages: number, readonly pageSize: number, readonly window: number | null, readonly maxLength: number) {
    this.pool = new PagePool(pages);
  }

  get ids(): number[] { return [...this.seqs.keys()]; }
  has(id: number): boolean { return this.seqs.has(id); }
  length(id: number): number { return this.get(id).length; }
  tokens(id: number): readonly number[] { return this.get(id).tokens; }
  /** A copy of the sequence's block table (-1 = evicted). */
  pages(id: number): number[] { return [...this.get(id).pages]; }

  private get(id: number): Sequence {
    const s = this.seqs.get(id);
    if (!s) throw new KvSequenceError(`no live KV sequence ${id}`);
    return s;
  }

  /**
   * A new sequence. With `shareFrom`, it starts holding the first `prefix` tokens of that
   * sequence by referencing its pages (a partial last page too: whoever writes into a
   * shared page first copies it). Nothing is allocated until tokens are reserved.
   */
  join(shareFrom?: { seq: number; prefix: number }): number {
    const id = this.nextId++;
    const s: Sequence = { pages: [], length: 0, tokens: [] };
    if (shareFrom) {
      const src = this.get(shareFrom.seq);
      const n = shareFrom.prefix;
      if (!Number.isInteger(n) || n < 0 || n > src.length) throw new KvSequenceError(`cannot share ${n} tokens of a ${src.length}-token sequence`);
      const np = Math.ceil(n / this.pageSize);
      if (src.pages.slice(0, np).some((p) => p < 0)) throw new KvSequenceError('cannot share a prefix whose pages the sliding window has evicted');
      for (let i = 0; i < np; i++) { this.pool.retain(src.pages[i]); s.pages.push(src.pages[i]); }
      s.length = n;
      s.tokens = src.tokens.slice(0, n);
    }
    this.seqs.set(id, s);
    return id;
  }

  /** The live sequence sharing the longest prefix with `prompt` (at most `limit` tokens), if any. */
  longestPrefix(prompt: ArrayLike<number>, limit: number): { seq: number; prefix: number } | null {
    let best: { seq: number; prefix: number } | null = null;
    for (const [id, s] of this.seqs) {
      if (s.pages.some((p) => p < 0)) continue;
      let n = 0;
      const max = Math.min(limit, s.length, prompt.length);
      while (n < max && s.tokens[n] === prompt[n]) n++;
      if (n > 0 && (!best || n > best.prefix)) best = { seq: id, prefix: n };
    }
    return best;
  }

  /** Pages `reserve(id, n tokens)` would take from the pool (new pages plus copies of shared ones). */
  pagesNeeded(id: number, n: number): number {
    const s = this.get(id);
    const P = this.pageSize;
    const firstWritten = Math.floor(s.length / P), lastPage = Math.ceil((s.length + n) / P);
    let k = Math.max(0, lastPage - s.pages.length);
    for (let i = firstWritten; i < Math.min(lastPage, s.pages.length); i++) if (this.pool.refCount(s.pages[i]) > 1) k++;
    return k;
  }

  /**
   * Room for `tokens` more tokens at the end of `id`: allocates pages, copies shared
   * pages about to be written, releases pages the window has left behind. All or
   * nothing: on KvPoolExhausted the sequence and the pool are as they were.
   */
  reserve(id: number, tokens: ArrayLike<number>): Reservation {
    const s = this.get(id);
    const n = tokens.length;
    const P = this.pageSize;
    const start = s.length, end = start + n;
    if (end > this.maxLength) throw new KvSequenceError(`sequence ${id} would hold ${end} tokens, over the context of ${this.maxLength}`);
    const firstWritten = Math.floor(start / P), lastPage = Math.ceil(end / P);
    const fresh = Math.max(0, lastPage - s.pages.length);
    const cow: number[] = [];
    for (let i = firstWritten; i < Math.min(lastPage, s.pages.length); i++) if (this.pool.refCount(s.pages[i]) > 1) cow.push(i);
    const got = this.pool.alloc(fresh + cow.length); // throws with nothing changed
    const copies: PageCopy[] = [];
    for (const i of cow) {
      const to = got.pop()!;
      copies.push({ from: s.pages[i], to });
      this.pool.release(s.pages[i]);
      s.pages[i] = to;
    }
    s.pages.push(...got);
    const positions: number[] = [], slots: number[] = [];
    for (let p = start; p < end; p++) { positions.push(p); slots.push(s.pages[Math.floor(p / P)] * P + (p % P)); }
    // The earliest new token reads from start - window + 1: pages wholly before it are dead,
    // and stay dead through any rollback to a length >= start.
    if (this.window !== null) {
      const keepFrom = start - this.window + 1;
      for (let i = 0; (i + 1) * P <= keepFrom; i++) if (s.pages[i] >= 0) { this.pool.release(s.pages[i]); s.pages[i] = -1; }
    }
    s.length = end;
    for (let i = 0; i < n; i++) s.tokens.push(tokens[i]);
    return { positions, slots, copies };
  }

  /** Rolls `id` back to its first `length` tokens, freeing pages that empty. */
  truncate(id: number, length: number): void {
    const s = this.get(id);
    if (!Number.isInteger(length) || length < 0 || length > s.length) throw new KvSequenceError(`cannot truncate a ${s.length}-token sequence to ${length}`);
    if (this.window !== null && length > 0) {
      const need = Math.max(0, length - this.window + 1);
      if (s.pages[Math.floor(need / this.pageSize)] < 0) throw new KvSequenceError(`cannot roll sequence ${id} back to ${length} tokens: the sliding window already evicted what position ${length} would read`);
    }
    const keep = Math.ceil(length / this.pageSize);
    for (const p of s.pages.splice(keep)) if (p >= 0) this.pool.release(p);
    s.length = length;
    s.tokens.length = length;
  }

  /** Ends a sequence; its pages go back to the pool unless another sequence shares them. */
  free(id: number): void {
    const s = this.get(id);
    for (const p of s.pages) if (p >= 0) this.pool.release(p);
    this.seqs.delete(id);
  }

  freeAll(): void { for (const id of this.ids) this.free(id); }

  usage(): KvUsage {
    const fill = new Map<number, number>();
    for (const s of this.seqs.values()) {
      s.pages.forEach((p, i) => {
        if (p < 0) return;
        const lo = this.window === null ? 0 : Math.max(0, s.length - this.window);
        const filled = Math.min(this.pageSize, s.length - i * this.pageSize) - Math.max(0, Math.min(this.pageSize, lo - i * this.pageSize));
        fill.set(p, Math.max(fill.get(p) ?? 0, filled));
      });
    }
    let slots = 0;
    for (const f of fill.values()) slots += f;
    return { page_size: this.pageSize, pages_total: this.pool.total, pages_used: this.pool.used, sequences: this.seqs.size, slots_used: slots };
  }

  /** Checks every invariant (tests call this after each operation): refcounts match references. */
  check(): void {
    const refs = new Map<number, number>();
    for (const [id, s] of this.seqs) {
      if (s.pages.length !== Math.ceil(s.length / this.pageSize)) throw new Error(`sequence ${id}: ${s.pages.length} pages for ${s.length} tokens`);
      for (const p of s.pages) if (p >= 0) refs.set(p, (refs.get(p) ?? 0) + 1);
    }
    for (let p = 0; p < this.pool.total; p++) {
      if (this.pool.refCount(p) !== (refs.get(p) ?? 0)) throw new Error(`page ${p}: refcount ${this.pool.refCount(p)}, referenced ${refs.get(p) ?? 0} times`);
    }
    if (this.pool.used !== refs.size) throw new Error(`pool counts ${this.pool.used} used pages, tables reference ${refs.size}`);
  }
}

export { KvPoolExhausted };
