// The CUDA kv_append, paged attention (GQA, windows, split-K and attention_merge) and the
// unfused attn_scores / softmax / attn_values, run on the CPU through the CUDA emulation,
// against dense float64 attention and the interpreter's paged cache with the bounds derived in
// test/fixtures/pagedCases.ts (shared with the WebGPU test). The cases are the WebGPU test's,
// drawn smaller: the emulation runs a thread per CUDA thread. Every KV format is drawn.
import fc from 'fast-check';
import { it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { packKvTable, pageWords } from '../../program/kv.ts';
import type { KvDType } from '../../program/model.ts';
import { dense, expectRms, expectWithin, interpreted, label, runCase, sameFormatBound, type Case } from '../fixtures/pagedCases.ts';
import { runKernelsOnCpu, type Launch } from './emulate.ts';

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
