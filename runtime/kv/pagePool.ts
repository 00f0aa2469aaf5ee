// The page pool's bookkeeping: which of the pool's fixed-size pages are free, and how
// many block-table entries reference each used one (prefix sharing makes that more than
// one). The pages themselves live in the engines' KV buffers (one K and one V buffer
// per layer, indexed by the same page number, so one block table serves every layer).

/** The pool has fewer free pages than an operation needs; nothing was changed. */
export class KvPoolExhausted extends Error {
  constructor(readonly asked: number, readonly free: number, readonly total: number) {
    super(`KV page pool exhausted: asked for ${asked} page${asked === 1 ? '' : 's'}, ${free} of ${total} free; finish or shorten a sequence, or give the engine more pages`);
  }
}

export class PagePool {
  private readonly refs: Int32Array;
  /** Free pages as a stack, lowest number on top, so allocation order is deterministic. */
  private readonly freeList: number[];

  constructor(readonly total: number) {
    if (!Number.isInteger(total) || total < 1) throw new Error(`a KV pool needs at least one page, got ${total}`);
    this.refs = new Int32Array(total);
    this.freeList = Array.from({ length: total }, (_, i) => total - 1 - i);
  }

  get free(): number { return this.freeList.length; }
  get used(): number { return this.total - this.freeList.length; }
  refCount(page: number): number { return this.refs[page]; }

  /** n fresh pages with one reference each, or KvPoolExhausted with the pool untouched. */
  alloc(n: number): number[] {
    if (n > this.freeList.length) throw new KvPoolExhausted(n, this.freeList.length, this.total);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = this.freeList.pop()!;
      this.refs[p] = 1;
      out.push(p);
    }
    return out;
  }

  retain(page: number): void {
    if (this.refs[page] < 1) throw new Error(`retain of free KV page ${page}`);
    this.refs[page]++;
  }

  /** Drops one reference; the page returns to the pool when none is left. */
  release(page: number): void {
    if (this.refs[page] < 1) throw new Error(`double free of KV page ${page}`);
    if (--this.refs[page] === 0) {
      // Keep the free stack sorted (lowest on top) so reuse order does not depend on history.
      let i = this.freeList.length;
      while (i > 0 && this.freeList[i - 1] < page) i--;
      this.freeList.splice(i, 0, page);
    }
  }
}
