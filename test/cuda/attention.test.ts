// The CUDA kv_append, paged attention (GQA, windows, split-K and attention_merge) and the
// unfused attn_scores / softmax / attn_values, run on the CPU through the CUDA emulation,
// against dense float64 attention and the interpreter's paged cache with the bounds derived in
// test/fixtures/pagedCases.ts (shared with the WebGPU test). The cases are the WebGPU test's,
// drawn smaller: the emulation runs a thread per CUDA thread. Every KV format is drawn.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { contiguousTables, CpuKvCache } from '../../compiler/ir/interpret.ts';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { packKvTable, pageWords } from '../../program/kv.ts';
import type { KvDType } from '../../program/model.ts';
import { dense, expectRms, expectWithin, interpreted, label, runCase, sameFormatBound, type Case } from '../fixtures/pagedCases.ts';
import { data, expectClose, oracle, rng } from '../gpu/harness.ts';
import { runKernelsOnCpu, type Launch } from './emulate.ts';

const TOL = 1e-4;

const RUNS = Number(process.env.INFER_CUDA_RUNS ?? 3);
const TIMEOUT = 240_000;

const smallCase: fc.Arbitrary<Case> = fc.record({
  dtype: fc.constantFrom<KvDType>('f32', 'f16', 'int8', 'int4'), kvHeads: fc.integer({ min: 1, max: 2 }), group: fc.constantFrom(1, 2, 4),
  headDim: fc.oneof(fc.integer({ min: 1, max: 12 }).map((d) => 2 * d), fc.constantFrom(32, 64)),
  pageSize: fc.constantFrom(1, 2, 4, 16), seqs: fc.array(fc.record({ history: fc.integer({ min: 0, max: 40 }), fresh: fc.integer({ min: 1, max: 2 }) }), { minLength: 1, maxLength: 2 }),
  window: fc.option(fc.integer({ min: 1, max: 30 }), { freq: 3 }), causal: fc.boolean(), rope: fc.boolean(),
  spare: fc.integer({ min: 0, max: 3 }), splits: fc.constantFrom(1, 2, 3), seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

const launch = (spec: KernelSpec, extra: Omit<Launch, 'kernel' | 'spec'> = {}): Launch => ({ kernel: cudaBackend.render(kernelKey(spec), spec)[0], spec, ...extra });

/** The history step's appends, then the fresh step's append and the given readers, as one program. */
function run(c: Case, r: ReturnType<typeof runCase>, readers: Launch[], outputs: Record<string, number>) {
  const { kvHeads, headDim, pageSize, dtype } = c;
  const words = r.L.total * pageWords({ kvHeads, headDim, pageSize, dtype });
  const append: KernelSpec = { kind: 'kv_append', kvHeads, headDim, pageSize, dtype, rope: c.rope ? r.theta : null };
  const tb = (s: typeof r.L.history, sfx: string) => ({
    [`positions${sfx}`]: s.positions, [`kv_slot${sfx}`]: s.tables.slots, [`kv_seq${sfx}`]: s.tables.seqOf, [`kv_table${sfx}`]: packKvTable(s.tables),
  });
  const hist = { k: 'kh', v: 'vh', positions: 'positions_h', kv_slot: 'kv_slot_h' };
  return runKernelsOnCpu([
    ...(r.Th > 0 ? [launch(append, { tokens: r.Th, bind: hist })] : []),
    launch(append),
    ...readers,
  ], r.Tf, { kh: r.kh, vh: r.vh, ...tb(r.L.history, '_h'), k: r.kf, v: r.vf, q: r.q, ...tb(r.L.fresh, '') }, { kcache: words, vcache: words, ...outputs });
}

it('kv_append + paged attention (+ attention_merge for split-K) equal dense attention and the interpreter, every KV format', () =>
  fc.assert(fc.property(smallCase, (c) => {
    const r = runCase(c);
    const { kvHeads, headDim, pageSize, dtype } = c;
    const attend: KernelSpec = { kind: 'attention', heads: r.H, kvHeads, headDim, pageSize, dtype, scale: r.scale, window: c.window, causal: c.causal, splits: c.splits };
    const out = r.Tf * r.H * headDim;
    const got = c.splits === 1
      ? run(c, r, [launch(attend)], { out })
      : run(c, r, [launch(attend, { bind: { out: 'part' } }), launch({ kind: 'attention_merge', heads: r.H, headDim, splits: c.splits })], { part: r.Tf * r.H * c.splits * (headDim + 2), out });
    const want = dense(c, r);
    expectWithin(got.out, want.out, want.bound, label(c));
    expectRms(got.out, want.out, c.dtype, label(c));
    expectWithin(got.out, interpreted(c, r), sameFormatBound(c, r), `${label(c)} vs interpreter`);
  }), { numRuns: RUNS + 3 }), TIMEOUT);

it('the unfused attention kernels (scores, softmax per head, P.V) equal dense attention too', () =>
  fc.assert(fc.property(smallCase, fc.integer({ min: 0, max: 5 }), (c, extra) => {
    const r = runCase(c);
    const { kvHeads, headDim, pageSize, dtype } = c;
    const context = Math.max(...r.L.lens) + extra;
    const mask = { heads: r.H, kvHeads, headDim, pageSize, dtype, window: c.window, causal: c.causal, context };
    const n = r.Tf * r.H * context;
    const got = run(c, r, [
      launch({ kind: 'attn_scores', ...mask, scale: r.scale }, { bind: { out: 'scores' } }),
      launch({ kind: 'softmax', width: context, rows: r.H }, { bind: { x: 'scores', out: 'probs' } }),
      launch({ kind: 'attn_values', ...mask }, { bind: { p: 'probs' } }),
    ], { scores: n, probs: n, out: r.Tf * r.H * headDim });
    const want = dense(c, r);
    expectWithin(got.out, want.out, want.bound, `unfused ${label(c)} context=${context}`);
    expectRms(got.out, want.out, c.dtype, `unfused ${label(c)}`);
    expectWithin(got.out, interpreted(c, r), sameFormatBound(c, r), `unfused ${label(c)} vs interpreter`);
  }), { numRuns: RUNS }), TIMEOUT);

// The families' settings (Gemma 2's soft-capped scores, NEOX RoPE folded into the KV append):
// one sequence of T tokens appended (pages of 4) with K rotated NEOX-style, then the fused
// attention and the unfused scores kernel, both soft-capped, against the interpreter's
// kv_store + attention / attn_scores over the same cache (as test/gpu/familyKernels.test.ts).
it('kv_append with NEOX RoPE, attention and attn_scores with soft-capped scores, equal the interpreter', () =>
  fc.assert(fc.property(fc.record({
    kvHeads: fc.integer({ min: 1, max: 2 }), group: fc.integer({ min: 1, max: 3 }), headDim: fc.constantFrom(4, 6, 16, 32), T: fc.integer({ min: 1, max: 10 }),
    window: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }), softcap: fc.constantFrom(0.5, 2, 50), theta: fc.constantFrom(10000, 1e6), seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }), ({ kvHeads, group, headDim, T, window, softcap, theta, seed }) => {
    const next = rng(seed);
    const heads = kvHeads * group, pageSize = 4, pages = Math.ceil(T / pageSize);
    // Scores of a few units, so a cap of 0.5 or 2 bends them and 50 barely does.
    const q = data(next, T * heads * headDim, 2), k = data(next, T * kvHeads * headDim, 2), v = data(next, T * kvHeads * headDim);
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    const tables = contiguousTables(positions, pageSize);
    const scale = 1 / Math.sqrt(headDim), context = T;
    const arg = { layer: 0, causal: true, window, scale, softcap };
    const want = (node: 'attention' | 'attn_scores') => oracle({ params: { q, k, v }, tokens: new Int32Array(T), positions, kv: new CpuKvCache(1, kvHeads, headDim, pages * pageSize, { pageSize }) }, (b, p) => {
      const store = b.node('kv_store', { layer: 0, rope: theta, neox: true }, [p('k', [T, kvHeads, headDim]), p('v', [T, kvHeads, headDim]), b.positions()]);
      return b.node(node, node === 'attention' ? arg : { ...arg, context }, [p('q', [T, heads, headDim]), store, b.positions()]);
    });
    const common = { kvHeads, headDim, pageSize, dtype: 'f32' as const };
    const words = pages * pageWords(common);
    const got = runKernelsOnCpu([
      launch({ kind: 'kv_append', ...common, rope: theta, neox: true }),
      launch({ kind: 'attention', heads, ...common, scale, window, causal: true, splits: 1, softcap }),
      launch({ kind: 'attn_scores', heads, ...common, scale, window, causal: true, context, softcap }, { bind: { out: 'scores' } }),
    ], T, { q, k, v, positions, kv_slot: tables.slots, kv_seq: tables.seqOf, kv_table: packKvTable(tables) }, { kcache: words, vcache: words, out: T * heads * headDim, scores: T * heads * context });
    const what = `KH=${kvHeads} G=${group} D=${headDim} T=${T} window=${window} softcap=${softcap}`;
    expectClose(got.out, want('attention'), TOL, `attention ${what}`);
    // Visible entries only (the rest are -inf in the interpreter, -1e30 here).
    const wantScores = want('attn_scores'), visible = (x: number) => (x > -1e29 ? x : 0);
    expectClose(Array.from(got.scores, visible), Array.from(wantScores, visible), TOL, `attn_scores ${what}`);
    for (const s of wantScores) if (s > -1e29) expect(Math.abs(s)).toBeLessThanOrEqual(softcap);
  }), { numRuns: RUNS }), TIMEOUT);
