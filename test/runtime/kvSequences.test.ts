// The page pool and sequences on their own (exact accounting through joins, growth,
// sharing, copy-on-write, window eviction, rollback, exhaustion), then the same
// operations driven through the CPU engine with decoding checked after each.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { KvPoolExhausted, KvSequences } from '../../runtime/kv/sequences.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';
import { kvOpArb, runKvOps } from '../fixtures/kvOps.ts';

describe('KvSequences', () => {
  it('grows by whole pages, shares prefixes by reference, copies a shared page before writing it', () => {
    const kv = new KvSequences(6, 4, null, 64);
    const a = kv.join();
    const r = kv.reserve(a, [1, 2, 3, 4, 5, 6]);
    expect(r.slots).toEqual([0, 1, 2, 3, 4, 5]);
    expect(kv.pages(a)).toEqual([0, 1]);
    const b = kv.join({ seq: a, prefix: 6 });
    expect(kv.pages(b)).toEqual([0, 1]);
    expect(kv.pool.refCount(1)).toBe(2);
    // b writes into the shared partial page 1: it gets a copy (page 2).
    const rb = kv.reserve(b, [9]);
    expect(rb.copies).toEqual([{ from: 1, to: 2 }]);
    expect(kv.pages(b)).toEqual([0, 2]);
    expect(rb.slots).toEqual([2 * 4 + 2]);
    // a's own next write into page 1 needs no copy any more.
    expect(kv.reserve(a, [7]).copies).toEqual([]);
    kv.check();
    kv.free(a);
    expect(kv.pool.refCount(0)).toBe(1);
    kv.free(b);
    expect(kv.pool.used).toBe(0);
  });

  it('reports exhaustion with the pages asked for and free, changing nothing', () => {
    const kv = new KvSequences(3, 2, null, 64);
    const a = kv.join();
    kv.reserve(a, [1, 2, 3, 4]);
    const b = kv.join();
    expect(() => kv.reserve(b, [1, 2, 3])).toThrow(KvPoolExhausted);
    try { kv.reserve(b, [1, 2, 3]); } catch (e) { expect((e as Error).message).toMatch(/asked for 2 pages, 1 of 3 free/); }
    expect(kv.length(b)).toBe(0);
    kv.check();
  });

  it('releases pages the sliding window has passed, and refuses a rollback that would need them', () => {
    const kv = new KvSequences(8, 2, 3, 64);
    const a = kv.join();
    kv.reserve(a, [1, 2, 3, 4, 5, 6, 7, 8]);
    // The next token (position 8) reads 6..8: pages 0..2 (positions 0..5) are dead.
    kv.reserve(a, [9]);
    expect(kv.pages(a).slice(0, 3)).toEqual([-1, -1, -1]);
    expect(kv.pool.used).toBe(2);
    expect(() => kv.truncate(a, 4)).toThrow(/evicted/);
    kv.truncate(a, 8);
    kv.check();
  });

  it('keeps exact accounting under random operations (no leaks, no wrong sharing)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.constantFrom(1, 2, 4), fc.option(fc.integer({ min: 1, max: 9 })),
      fc.array(fc.tuple(fc.nat(5), fc.nat(), fc.integer({ min: 1, max: 7 })), { maxLength: 60 }), (pages, P, window, ops) => {
        const kv = new KvSequences(pages, P, window, 40);
        const live: number[] = [];
        for (const [kind, pick, n] of ops) {
          try {
            if (kind === 0 || !live.length) live.push(kv.join());
            else if (kind === 1) { const s = live[pick % live.length]; live.push(kv.join({ seq: s, prefix: Math.min(kv.length(s), n) })); }
            else if (kind <= 3) kv.reserve(live[pick % live.length], Array(n).fill(1));
            else if (kind === 4) { const s = live[pick % live.length]; kv.truncate(s, Math.max(0, kv.length(s) - n)); }
            else { const s = live.splice(pick % live.length, 1)[0]; kv.free(s); }
          } catch (e) {
            if (!(e instanceof Error) || !/exhausted|context|evicted|cannot/.test(e.message)) throw e;
          }
          kv.check();
        }
      }), { numRuns: 300 });
  });
});

describe('CPU engine under random KV operations', () => {
  it('every live sequence decodes what a fresh engine would, after every operation', async () => {
    const shapes = fc.record({
      pageSize: fc.constantFrom(1, 2, 4), pages: fc.integer({ min: 4, max: 14 }), window: fc.option(fc.integer({ min: 2, max: 8 })),
      kvDtype: fc.constantFrom('f32', 'int8') as fc.Arbitrary<'f32' | 'int8'>, seed: fc.integer({ min: 1, max: 999 }),
    });
    const seen = { checks: 0, shared: 0, exhausted: 0 };
    await fc.assert(fc.asyncProperty(shapes, fc.array(kvOpArb(11), { minLength: 5, maxLength: 25 }), async (c, ops) => {
      const g = runPipeline(denseLlama({ vocab: 11, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 6, maxContext: 24, window: c.window, pageSize: c.pageSize, kvDtype: c.kvDtype })).graph;
      const program = schedule(g);
      const w = new RandomWeights(g.params, c.seed);
      const engine = new CpuEngine(g, w, program, { maxSequences: 4, kvPages: c.pages });
      const ref = new CpuEngine(g, w, program, { maxSequences: 1 });
      const fresh = async (tokens: number[]) => {
        ref.reset();
        return ref.forward(Int32Array.from(tokens), Int32Array.from(tokens, (_, i) => i), { rows: 'last' });
      };
      const r = await runKvOps(engine, ops, fresh, (got, want, what) => {
        for (let i = 0; i < want.length; i++) if (!(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])))) throw new Error(`${what}: logit ${i}: ${got[i]} vs fresh ${want[i]}`);
      });
      seen.checks += r.checks; seen.shared += r.shared; seen.exhausted += r.exhausted;
    }), { numRuns: 40 });
    // The runs exercised what they claim to: decoding checks, prefix sharing, exhaustion.
    expect(seen.checks).toBeGreaterThan(100);
    expect(seen.shared).toBeGreaterThan(5);
    expect(seen.exhausted).toBeGreaterThan(2);
  });
});
