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
import { CpuKvCache, GraphBuilder, interpret } from '../../compiler/ir/index.ts';
import type { KvDType, ModelInfo } from '../../program/model.ts';
import { packKvTable, pageWords, storeErrorBound, storeRow, type KvTables } from '../../program/kv.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import type { RenderedKernel } from '../../backends/backend.ts';
import { data, rng, runOnGpu, variants } from './harness.ts';

const RUNS = Number(process.env.INFER_GPU_RUNS ?? 12);
let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const DTYPES: KvDType[] = ['f32', 'f16', 'int8', 'int4'];

const caseArb = fc.record({
  dtype: fc.constantFrom(...DTYPES), kvHeads: fc.integer({ min: 1, max: 3 }), group: fc.constantFrom(1, 2, 3, 4, 8),
  headDim: fc.oneof(fc.integer({ min: 1, max: 20 }).map((d) => 2 * d), fc.constantFrom(64, 128)),
  pageSize: fc.constantFrom(1, 2, 4, 8, 16, 32), seqs: fc.array(fc.record({ history: fc.integer({ min: 0, max: 70 }), fresh: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 4 }),
  window: fc.option(fc.integer({ min: 1, max: 40 }), { freq: 3 }), causal: fc.boolean(), rope: fc.boolean(),
  spare: fc.integer({ min: 0, max: 5 }), splits: fc.constantFrom(1, 1, 2, 3, 8), seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never;

/** Block tables over a pool whose pages are handed out in a shuffled order. */
function layout(c: Case, next: () => number) {
  const P = c.pageSize;
  const lens = c.seqs.map((s) => s.history + s.fresh);
  const need = lens.map((l) => Math.ceil(l / P));
  const total = need.reduce((a, b) => a + b, 0) + c.spare;
  const order = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) { const j = Math.floor(next() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  const indptr = [0], pages: number[] = [];
  need.forEach((n) => { pages.push(...order.splice(0, n)); indptr.push(pages.length); });
  const slot = (b: number, pos: number) => pages[indptr[b] + Math.floor(pos / P)] * P + (pos % P);
  // Steps: first every sequence's history, then every sequence's fresh tokens.
  const stepOf = (which: 'history' | 'fresh') => {
    const positions: number[] = [], slots: number[] = [], seqOf: number[] = [];
    c.seqs.forEach((s, b) => {
      const from = which === 'history' ? 0 : s.history, to = which === 'history' ? s.history : s.history + s.fresh;
      for (let p = from; p < to; p++) { positions.push(p); slots.push(slot(b, p)); seqOf.push(b); }
    });
    const tables: KvTables = {
      slots: Int32Array.from(slots), seqOf: Int32Array.from(seqOf), indptr: Int32Array.from(indptr), pages: Int32Array.from(pages),
      lastLen: Int32Array.from(lens.map((l, b) => l - (need[b] - 1) * P)),
    };
    return { positions: Int32Array.from(positions), tables };
  };
  return { total, lens, history: stepOf('history'), fresh: stepOf('fresh') };
}

/** llama.cpp "normal" RoPE in float64, written out again here so the reference shares no code with the interpreter. */
function ropeRow(x: ArrayLike<number>, pos: number, theta: number): Float64Array {
  const D = x.length, out = new Float64Array(D);
  for (let i = 0; i < D / 2; i++) {
    const a = pos * Math.pow(theta, (-2 * i) / D), c = Math.cos(a), s = Math.sin(a);
    out[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
    out[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c;
  }
  return out;
}

function runCase(c: Case) {
  const next = rng(c.seed);
  const { kvHeads: KH, headDim: D, dtype } = c;
  const H = KH * c.group, theta = 10000, scale = 1 / Math.sqrt(D);
  const L = layout(c, next);
  const Th = L.history.positions.length, Tf = L.fresh.positions.length;
  const kh = data(next, Th * KH * D), vh = data(next, Th * KH * D);
  const kf = data(next, Tf * KH * D), vf = data(next, Tf * KH * D), q = data(next, Tf * H * D);
  // Per sequence, position -> unquantised (rotated) K and V rows for the dense reference.
  const K = c.seqs.map(() => new Map<string, Float64Array>()), Vv = c.seqs.map(() => new Map<string, Float64Array>());
  const record = (step: typeof L.history, k: Float32Array, v: Float32Array) => step.positions.forEach((p, t) => {
    const b = step.tables.seqOf[t];
    for (let h = 0; h < KH; h++) {
      const row = k.subarray((t * KH + h) * D, (t * KH + h + 1) * D);
      K[b].set(`${p},${h}`, c.rope ? ropeRow(row, p, theta) : Float64Array.from(row));
      Vv[b].set(`${p},${h}`, Float64Array.from(v.subarray((t * KH + h) * D, (t * KH + h + 1) * D)));
    }
  });
  record(L.history, kh, vh);
  record(L.fresh, kf, vf);
  return { next, H, theta, scale, L, Th, Tf, kh, vh, kf, vf, q, K, V: Vv };
}

/** Dense attention and its error bound per output element, from the unquantised rows. */
function dense(c: Case, r: ReturnType<typeof runCase>) {
  const { kvHeads: KH, headDim: D, dtype } = c;
  const out = new Float64Array(r.Tf * r.H * D), bound = new Float64Array(r.Tf * r.H * D);
  const amax = (x: Float64Array) => x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  r.L.fresh.positions.forEach((p, t) => {
    const b = r.L.fresh.tables.seqOf[t];
    const hi = c.causal ? p : r.L.lens[b] - 1;
    const lo = c.window === null ? 0 : Math.max(0, p - c.window + 1);
    for (let h = 0; h < r.H; h++) {
      const kvh = Math.floor(h / c.group);
      const qrow = r.q.subarray((t * r.H + h) * D, (t * r.H + h + 1) * D);
      const s: number[] = [];
      let dk = 0, dv = 0, vmax = 0;
      for (let j = lo; j <= hi; j++) {
        const k = r.K[b].get(`${j},${kvh}`)!, v = r.V[b].get(`${j},${kvh}`)!;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qrow[d] * k[d];
        s.push(dot * r.scale);
        dk = Math.max(dk, storeErrorBound(amax(k), dtype));
        dv = Math.max(dv, storeErrorBound(amax(v), dtype));
        vmax = Math.max(vmax, amax(v));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, x) => a + x, 0);
      const q1 = qrow.reduce((a, x) => a + Math.abs(x), 0);
      const delta = r.scale * q1 * dk;
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = lo; j <= hi; j++) acc += (e[j - lo] / sum) * r.V[b].get(`${j},${kvh}`)![d];
        out[(t * r.H + h) * D + d] = acc;
        bound[(t * r.H + h) * D + d] = dv + Math.expm1(2 * delta) * vmax + 1e-4 * vmax;
      }
    }
  });
  return { out, bound };
}

/**
 * Bound on |GPU - interpreter| per output element when both store the same format.
 * Derivation. The interpreter stores storeRow(x) of the float64 row x and attends in
 * float64; the GPU stores what kv_append computes in f32 and attends in f32.
 * (1) Storage. A stored element can differ between the two by e:
 *   - int8/int4: q = round(x / s). The device computes x / s in f32 (WGSL: division within
 *     2.5 ULP, its scale amax / L within 2.5 ULP, the interpreter's within 0.5), so its
 *     quotient is within ETA = 2^-20 (> 5.5 * 2^-23) relative of the float64 one, plus the
 *     rotation's error / s with RoPE. The two round the other way only when the float64
 *     quotient lies within that distance of a half-integer (seed -2057829781: x / s =
 *     -6.50000006, f32 gives -6.5, which rounds to even, -6; float64 -7): then e = one step
 *     s (amax / 7 for int4: 0.13 there, 17 times the old 2e-3 * max|out| tolerance). Every
 *     element also differs by its scale's relative difference, <= ETA.
 *   - f16: pack2x16float's rounding is the implementation's: e = one binary16 ULP of x.
 *   - RoPE (K only): the device rotates in f32 with f32 cos/sin after Cody-Waite reduction;
 *     assumed within ETA * (|x0| + |x1|) (llvmpipe's sin/cos are accurate to a few ULP on
 *     [-pi, pi]; WGSL alone would allow 2^-11 absolute, which a looser device would show here).
 * (2) Scores: s_j = scale * sum_d q_d k_jd moves by scale * sum_d |q_d| e_jd from storage and
 *     by gamma(D + 2) * scale * sum_d |q_d k_jd| from f32 (dequantising multiply, D products
 *     summed; gamma(n) = n u / (1 - n u), u = 2^-24). Delta = the largest over visible keys.
 * (3) Softmax: each probability moves by a factor within exp(+-2 Delta) and, from the f32
 *     softmax itself, within 1 + EPS_SM: WGSL's exp is within 3 + 2|x| ULP, the fused kernel's
 *     online rescales compound at most n of those (their |x| sum to at most the score range R),
 *     plus the sum (gamma(n)) and the 2.5-ULP division: EPS_SM = (8 (n + 2) + 6 R) 2^-23 + gamma(n).
 * (4) Output: sum_j p~_j v~_jd - sum_j p_j v_jd is at most
 *     sum_j p_j e^V_jd + rho * sum_j p_j (|v_jd| + e^V_jd) + gamma(n + 2) (1 + rho) sum_j p_j (|v_jd| + e^V_jd),
 *     rho = expm1(2 Delta + EPS_SM) (sum_j |p~_j - p_j| <= rho), the last term the f32 P.V sum
 *     (and the flash-decoding merge, one more rescale and sum, inside the same gamma).
 * Tight when no quotient is near a tie (f32 rounding only), one step where one is.
 */
function sameFormatBound(c: Case, r: ReturnType<typeof runCase>): Float64Array {
  const { kvHeads: KH, headDim: D, dtype } = c;
  const u = 2 ** -24, ETA = 2 ** -20;
  const gamma = (n: number) => (n * u) / (1 - n * u);
  const ulp16 = (x: number) => (x === 0 ? 2 ** -24 : 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x))), -14) - 10));
  /** The stored row and the largest per-element difference e between the two stores. */
  const stored = (x: Float64Array, rotated: boolean) => {
    const { values, scale: s } = storeRow(x, dtype);
    const e = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      const rot = rotated ? ETA * (Math.abs(x[d & ~1]) + Math.abs(x[d | 1])) : 0;
      if (dtype === 'f32') e[d] = rot;
      else if (dtype === 'f16') e[d] = ulp16(x[d]) + rot;
      else if (s > 0) {
        const t = Math.abs(x[d]) / s;
        const nearTie = Math.abs(t - Math.floor(t) - 0.5) <= ETA * t + rot / s;
        e[d] = (nearTie ? s : 0) + ETA * (Math.abs(values[d]) + s) + rot;
      } else e[d] = rot;
    }
    return { values, e };
  };
  const bound = new Float64Array(r.Tf * r.H * D);
  r.L.fresh.positions.forEach((p, t) => {
    const b = r.L.fresh.tables.seqOf[t];
    const hi = c.causal ? p : r.L.lens[b] - 1;
    const lo = c.window === null ? 0 : Math.max(0, p - c.window + 1);
    const n = hi - lo + 1;
    for (let h = 0; h < r.H; h++) {
      const kvh = Math.floor(h / c.group);
      const qrow = r.q.subarray((t * r.H + h) * D, (t * r.H + h + 1) * D);
      const ks = [], vs = [], scores: number[] = [];
      let delta = 0;
      for (let j = lo; j <= hi; j++) {
        const k = stored(r.K[b].get(`${j},${kvh}`)!, c.rope), v = stored(r.V[b].get(`${j},${kvh}`)!, false);
        let dot = 0, fromStore = 0, abs = 0;
        for (let d = 0; d < D; d++) { dot += qrow[d] * k.values[d]; fromStore += Math.abs(qrow[d]) * k.e[d]; abs += Math.abs(qrow[d] * k.values[d]); }
        scores.push(dot * r.scale);
        delta = Math.max(delta, r.scale * (fromStore + gamma(D + 2) * abs));
        ks.push(k); vs.push(v);
      }
      const m = Math.max(...scores), range = m - Math.min(...scores);
      const w = scores.map((x) => Math.exp(x - m));
      const sum = w.reduce((a, x) => a + x, 0);
      const epsSm = (8 * (n + 2) + 6 * range) * 2 ** -23 + gamma(n);
      const rho = Math.expm1(2 * delta + epsSm);
      for (let d = 0; d < D; d++) {
        let fromV = 0, mass = 0;
        for (let j = 0; j < n; j++) { const pj = w[j] / sum; fromV += pj * vs[j].e[d]; mass += pj * (Math.abs(vs[j].values[d]) + vs[j].e[d]); }
        bound[(t * r.H + h) * D + d] = fromV + rho * mass + gamma(n + 2) * (1 + rho) * mass;
      }
    }
  });
  return bound;
}

function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, bound: Float64Array, what: string) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= bound[i])) throw new Error(`${what}: element ${i}: got ${got[i]}, dense ${want[i]}, bound ${bound[i]}`);
  }
}

/**
 * The bound above is a worst case (every score off by the most at once) and is loose at
 * large head_dim; this is the typical error a user sees: the RMS of (out - dense) over the
 * RMS of the output, measured at most 2e-8 (f32), 4.4e-4 (f16), 6.4e-3 (int8) and 0.12 (int4)
 * over 3000 random cases of the CPU test (INFER_MEASURE_RMS=1 INFER_CPU_RUNS=3000 prints them).
 * The limits leave about 2x headroom.
 */
const RMS_LIMIT: Record<KvDType, number> = { f32: 1e-5, f16: 1e-3, int8: 1.5e-2, int4: 0.25 };
function rmsError(got: ArrayLike<number>, want: Float64Array): number {
  let e = 0, w = 0;
  for (let i = 0; i < want.length; i++) { e += (got[i] - want[i]) ** 2; w += want[i] ** 2; }
  return w === 0 ? 0 : Math.sqrt(e / w);
}
function expectRms(got: ArrayLike<number>, want: Float64Array, dtype: KvDType, what: string) {
  const r = rmsError(got, want);
  if (process.env.INFER_MEASURE_RMS) console.log(`RMS ${dtype} ${r}`);
  if (!(r <= RMS_LIMIT[dtype])) throw new Error(`${what}: RMS error ${r} over the output's RMS > ${RMS_LIMIT[dtype]}`);
}

/** The kernel with one binding bound under another buffer name (the partials buffer). */
const renamed = (k: RenderedKernel, from: string, to: string): RenderedKernel => ({ ...k, bindings: k.bindings.map((b) => (b.name === from ? { ...b, name: to } : b)) });

const label = (c: Case) => `${c.dtype} KH=${c.kvHeads} G=${c.group} D=${c.headDim} P=${c.pageSize} seqs=${JSON.stringify(c.seqs)} window=${c.window} causal=${c.causal} rope=${c.rope} splits=${c.splits}`;

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

/** The same case through the IR interpreter's paged cache (which stores exactly what the format holds). */
function interpreted(c: Case, r: ReturnType<typeof runCase>): Float64Array | Float32Array {
  const { kvHeads: KH, headDim: D, pageSize, dtype } = c;
  const model: ModelInfo = {
    name: 'paged', vocab: 1, dim: 1, layers: 1, heads: r.H, kvHeads: KH, headDim: D, maxContext: 1 << 20, eos: null,
    kv: { layout: { kind: 'paged', pageSize }, dtype, window: c.window }, weights: { binding: 'random', seed: 0 }, constants: {},
  };
  const cache = new CpuKvCache(1, KH, D, r.L.total * pageSize, { pageSize, dtype });
  const run = (step: typeof r.L.history, params: Record<string, Float32Array>, withAttention: boolean, T: number) => {
    const b = new GraphBuilder();
    const store = b.node('kv_store', { layer: 0, rope: c.rope ? r.theta : null }, [b.param('k', [T, KH, D]), b.param('v', [T, KH, D]), b.positions()]);
    const out = withAttention ? b.node('attention', { layer: 0, causal: c.causal, window: c.window, scale: r.scale }, [b.param('q', [T, r.H, D]), store, b.positions()]) : store;
    const g = b.finish(model, out);
    return interpret(g, { get: (n) => params[n] }, cache, { tokens: new Int32Array(T), positions: step.positions, kv: step.tables }).get(out);
  };
  if (r.Th > 0) run(r.L.history, { k: r.kh, v: r.vh }, false, r.Th);
  return run(r.L.fresh, { k: r.kf, v: r.vf, q: r.q }, true, r.Tf)!;
}

it('paged attention in the CPU interpreter equals dense attention, within the same bounds', () =>
  fc.assert(fc.property(caseArb, (c) => {
    const r = runCase(c);
    const want = dense(c, r);
    const got = interpreted(c, r);
    expectWithin(got, want.out, want.bound, label(c));
    expectRms(got, want.out, c.dtype, label(c));
  }), { numRuns: Number(process.env.INFER_CPU_RUNS ?? 60) }));
