// KvAppend + paged attention on WebGPU and on the CPU interpreter, against dense
// attention computed here in float64 from the unquantised K/V (an independent
// reference: no page tables, no quantisation). fast-check draws KV formats, page
// sizes, shuffled page tables, batches of sequences with different history lengths
// and several new tokens each (multi-token causal queries), GQA ratios including MQA,
// windows, RoPE in the append or not, and causal or not.
//
// Bounds. f32: 1e-4 of the output's scale (f32 accumulation). Quantised formats use
// the bound that follows from the storage error (program/kv.ts storeErrorBound): if every
// stored K element is off by at most dk and every V element by at most dv, each score
// moves by at most delta = scale * |q|_1 * dk, so each probability by a factor within
// exp(+-2 delta), and the output by at most dv + (exp(2 delta) - 1) * max|v| (plus the
// f32 slack). f16: dk = max|k| * 2^-10 (one ulp: WGSL leaves pack2x16float's rounding
// to the implementation); int8/int4: max|row| / (2 * 127) or / (2 * 7).
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packKvTable, pageWords } from '../../program/kv.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import type { RenderedKernel } from '../../backends/backend.ts';
import { runOnGpu, variants } from './harness.ts';
import { caseArb, dense, expectRms, expectWithin, interpreted, label, runCase, sameFormatBound } from '../fixtures/pagedCases.ts';

const RUNS = Number(process.env.INFER_GPU_RUNS ?? 12);
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

/** The kernel with one binding bound under another buffer name (the partials buffer). */
const renamed = (k: RenderedKernel, from: string, to: string): RenderedKernel => ({ ...k, bindings: k.bindings.map((b) => (b.name === from ? { ...b, name: to } : b)) });


it('paged attention on WebGPU equals dense attention (shuffled pages, batches, GQA/MQA, windows, every KV format)', () =>
  fc.assert(fc.asyncProperty(caseArb, async (c) => {
    const r = runCase(c);
    const { kvHeads, headDim, pageSize, dtype } = c;
    const storage = { kvHeads, headDim, pageSize, dtype };
    const words = r.L.total * pageWords(storage);
    const append = variants({ kind: 'kv_append', kvHeads, headDim, pageSize, dtype, rope: c.rope ? r.theta : null }).get('')!;
    const attend = variants({ kind: 'attention', heads: r.H, kvHeads, headDim, pageSize, dtype, scale: r.scale, window: c.window, causal: c.causal, splits: c.splits }).get('')!;
    // Flash-decoding: partials into `part`, merged into `out`.
    const merge = c.splits > 1 ? [variants({ kind: 'attention_merge', heads: r.H, headDim, splits: c.splits }).get('')!] : [];
    const tb = (s: typeof r.L.history) => ({ positions: s.positions, kv_slot: s.tables.slots, kv_seq: s.tables.seqOf, kv_table: packKvTable(s.tables) });
    let pool: Record<string, number | Float32Array> = { kcache: words, vcache: words };
    if (r.Th > 0) pool = await runOnGpu(device, append, r.Th, { k: r.kh, v: r.vh, ...tb(r.L.history) }, pool);
    const got = c.splits === 1
      ? await runOnGpu(device, [append, attend], r.Tf, { k: r.kf, v: r.vf, q: r.q, ...tb(r.L.fresh) }, { ...pool, out: r.Tf * r.H * headDim })
      : await runOnGpu(device, [append, renamed(attend, 'out', 'part'), ...merge], r.Tf, { k: r.kf, v: r.vf, q: r.q, ...tb(r.L.fresh) },
        { ...pool, part: r.Tf * r.H * c.splits * (headDim + 2), out: r.Tf * r.H * headDim });
    const want = dense(c, r);
    expectWithin(got.out, want.out, want.bound, label(c));
    expectRms(got.out, want.out, c.dtype, label(c));
    // Against the interpreter, which stores the same format: only f32 arithmetic and the
    // odd quantisation step rounded the other way (x / scale in f32 vs float64) differ.
    expectWithin(got.out, interpreted(c, r), sameFormatBound(c, r), `${label(c)} vs interpreter`);
  }), { numRuns: RUNS }));

it('the unfused attention kernels (scores, softmax per head, P.V) on WebGPU equal dense attention too', () =>
  fc.assert(fc.asyncProperty(caseArb, fc.integer({ min: 0, max: 9 }), async (c, extra) => {
    const r = runCase(c);
    const { kvHeads, headDim, pageSize, dtype } = c;
    const storage = { kvHeads, headDim, pageSize, dtype };
    const words = r.L.total * pageWords(storage);
    const context = Math.max(...r.L.lens) + extra;
    const mask = { heads: r.H, kvHeads, headDim, pageSize, dtype, window: c.window, causal: c.causal, context };
    const append = variants({ kind: 'kv_append', kvHeads, headDim, pageSize, dtype, rope: c.rope ? r.theta : null }).get('')!;
    const scores = renamed(variants({ kind: 'attn_scores', ...mask, scale: r.scale }).get('')!, 'out', 'scores');
    const soft = renamed(renamed(variants({ kind: 'softmax', width: context, rows: r.H }).get('')!, 'x', 'scores'), 'out', 'probs');
    const values = renamed(variants({ kind: 'attn_values', ...mask }).get('')!, 'p', 'probs');
    const tb = (s: typeof r.L.history) => ({ positions: s.positions, kv_slot: s.tables.slots, kv_seq: s.tables.seqOf, kv_table: packKvTable(s.tables) });
    let pool: Record<string, number | Float32Array> = { kcache: words, vcache: words };
    if (r.Th > 0) pool = await runOnGpu(device, append, r.Th, { k: r.kh, v: r.vh, ...tb(r.L.history) }, pool);
    const n = r.Tf * r.H * context;
    const got = await runOnGpu(device, [append, scores, soft, values], r.Tf, { k: r.kf, v: r.vf, q: r.q, ...tb(r.L.fresh) },
      { ...pool, scores: n, probs: n, out: r.Tf * r.H * headDim });
    const want = dense(c, r);
    expectWithin(got.out, want.out, want.bound, `unfused ${label(c)} context=${context}`);
    expectRms(got.out, want.out, c.dtype, `unfused ${label(c)}`);
    expectWithin(got.out, interpreted(c, r), sameFormatBound(c, r), `unfused ${label(c)} vs interpreter`);
  }), { numRuns: Math.max(4, Math.round(RUNS / 2)) }));

it('paged attention in the CPU interpreter equals dense attention, within the same bounds', () =>
  fc.assert(fc.property(caseArb, (c) => {
    const r = runCase(c);
    const want = dense(c, r);
    const got = interpreted(c, r);
    expectWithin(got, want.out, want.bound, label(c));
    expectRms(got, want.out, c.dtype, label(c));
  }), { numRuns: Number(process.env.INFER_CPU_RUNS ?? 60) }));
