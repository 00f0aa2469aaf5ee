// Mixture of experts in the IR: the shape rules and float64 meaning of the MoE ops
// (softmax, topk, expert_matmul, moe, and the fused moe_route and moe_experts).
//
// A routing value is an f32 tensor [T, k, 2]: for token t and slot j (j = 0 is the
// highest score), element 2j is the expert's weight and 2j+1 its index (an exact
// small integer in f32). Both backends and the runtime's statistics read this layout.
//
// Expert weights are merged per layer as GGUF stores them: ggml dims [K, N, E], expert
// e's [K, N] matrix is the contiguous slice e, element (k, n, e) at e*K*N + n*K + k.
//
// Ties: top-k is the first k of the order llama.cpp's CPU backend sorts the scores
// into (ggml_argsort_top_k: the indices 0..E-1 put through libstdc++'s std::sort with
// `score[a] > score[b]`), reproduced exactly by `llamaArgsort` below. Distinct scores
// come out highest first, as in any sort; equal scores come out in the order that
// sort leaves them in, which is deterministic but not always index order:
//   - E <= 16: std::sort is a plain insertion sort, which is stable: equal scores go
//     to the lower expert index.
//   - E > 16: introsort's median-of-three partitions move equal scores past each
//     other, so which of several tied experts wins depends on the whole score row.
// Measured against the bundled llama.cpp (test/agreement/moeTies.test.ts: routers
// with duplicated columns, E 4..64, k 1..4). What infer cannot reproduce is whether
// llama.cpp's scores tie at all: its softmax takes exp with a SIMD approximation over
// whole vector widths (16 lanes with AVX-512, 8 with AVX2) and libm's expf over the
// last E mod width experts, so two experts with equal logits on opposite sides of
// that boundary usually get scores 1 ulp apart in llama.cpp, equal scores here.
import type { Node } from './graph.ts';
import type { MoeGating, Op, OpArgs } from './ops.ts';
import type { MoeScore } from '../../program/kernels.ts';
import { UNARY_MEANING } from './ops.ts';
import { sameShape, ShapeError, showShape, type Typed } from './shapes.ts';
import { llamaArgsort } from './argsort.ts';

export { llamaArgsort };

type Values = Float64Array | Float32Array;

const MOE_OPS: ReadonlySet<Op> = new Set(['softmax', 'topk', 'expert_matmul', 'moe', 'moe_route', 'moe_experts']);
export const isMoeOp = (op: Op): boolean => MOE_OPS.has(op);

function rank(what: string, s: Typed, r: number): void {
  if (s.shape.length !== r) throw new ShapeError(`${what} must have rank ${r}, got ${showShape(s.shape)}`);
  if (s.dtype !== 'f32') throw new ShapeError(`${what} must be an f32 tensor`);
}

function routingType(what: string, r: Typed): number {
  rank(what, r, 3);
  if (r.shape[2] !== 2 || typeof r.shape[1] !== 'number') throw new ShapeError(`${what} must be a routing [T, k, 2] from topk, got ${showShape(r.shape)}`);
  return r.shape[1];
}

function gatingCheck(a: MoeGating, experts: number | 'T'): void {
  if (!Number.isInteger(a.k) || a.k < 1 || (typeof experts === 'number' && a.k > experts)) throw new ShapeError(`top-k needs 1 <= k <= ${experts} experts, got k = ${a.k}`);
  if (a.softmax && a.renorm) throw new ShapeError('routing weights are either renormalised or softmaxed, not both');
  if (!Number.isFinite(a.scale)) throw new ShapeError(`routing scale must be finite, got ${a.scale}`);
}

/** Checks expert weights [K, N, E] against an input row width; returns N. */
function expertWeights(w: Typed, K: number | 'T'): { N: number; E: number } {
  rank('expert weights', w, 3);
  const [wk, N, E] = w.shape as number[];
  if (wk !== K) throw new ShapeError(`cannot multiply rows of ${K} by expert weights ${showShape(w.shape)}: inner dims ${K} and ${wk} differ`);
  return { N, E };
}

/** Where a moe_experts node's routing source sits (its weights are at 1, or 2 for silu_mul). */
export function expertsRoutingIndex(a: OpArgs['moe_experts']): number {
  return a.input === 'silu_mul' || a.input === 'swiglu' ? 3 : 2;
}

/** Shape rule of a MoE op (called from inferType). */
export function moeType(op: Op, arg: unknown, src: readonly Typed[]): Typed {
  switch (op) {
    case 'softmax':
      if (src[0].shape.length < 1 || src[0].dtype !== 'f32') throw new ShapeError('softmax takes an f32 tensor');
      return { shape: src[0].shape, dtype: 'f32' };
    case 'topk': {
      const s = src[0];
      rank('top-k scores', s, 2);
      gatingCheck(arg as MoeGating, s.shape[1]);
      return { shape: [s.shape[0], (arg as MoeGating).k, 2], dtype: 'f32' };
    }
    case 'expert_matmul': {
      const [x, w] = src;
      if (x.shape.length !== 2 && x.shape.length !== 3) throw new ShapeError(`the input of an expert matmul must be [T, K] or [T, experts, K], got ${showShape(x.shape)}`);
      const { N, E } = expertWeights(w, x.shape.at(-1)!);
      if (x.shape.length === 3 && x.shape[1] !== E) throw new ShapeError(`input ${showShape(x.shape)} has ${x.shape[1]} experts, the weights ${E}`);
      return { shape: [x.shape[0], E, N], dtype: 'f32' };
    }
    case 'moe': {
      const [r, y] = src;
      routingType('moe routing', r);
      rank('the expert body', y, 3);
      return { shape: [y.shape[0], y.shape[2]], dtype: 'f32' };
    }
    case 'moe_route': {
      const [x, router] = src;
      rank('router input', x, 2);
      rank('router', router, 2);
      if (x.shape[1] !== router.shape[0]) throw new ShapeError(`router ${showShape(router.shape)} does not take rows of ${x.shape[1]}`);
      gatingCheck(arg as MoeGating, router.shape[1]);
      return { shape: [x.shape[0], (arg as MoeGating).k, 2], dtype: 'f32' };
    }
    case 'moe_experts': {
      const a = arg as OpArgs['moe_experts'];
      const x = src[0];
      const wi = a.input === 'silu_mul' ? 2 : 1;
      const k = routingType('moe routing', src[expertsRoutingIndex(a)]);
      if (a.input === 'swiglu' && !sameShape(src[1].shape, src[2].shape)) throw new ShapeError('gate and up expert weights differ in shape');
      if (a.input === 'shared' || a.input === 'swiglu') rank('expert input', x, 2);
      else {
        rank('expert input', x, 3);
        if (x.shape[1] !== k) throw new ShapeError(`per-slot expert input ${showShape(x.shape)} does not have k = ${k} slots`);
        if (a.input === 'silu_mul' && !sameShape(x.shape, src[1].shape)) throw new ShapeError('gate and up differ in shape');
      }
      const { N } = expertWeights(src[wi], x.shape.at(-1)!);
      if (a.residual && !a.combine) throw new ShapeError('a residual needs the combined output');
      const out: Typed = { shape: a.combine ? [x.shape[0], N] : [x.shape[0], k, N], dtype: 'f32' };
      if (a.residual && !sameShape(src[src.length - 1].shape, out.shape)) throw new ShapeError('moe residual shape differs from the output');
      return out;
    }
  }
  throw new ShapeError(`unknown op ${String(op)}`);
}

// ---- meaning (float64) ----

function softmaxRows(x: Values, width: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / width; r++) {
    let max = -Infinity;
    for (let i = 0; i < width; i++) max = Math.max(max, x[r * width + i]);
    let sum = 0;
    for (let i = 0; i < width; i++) { out[r * width + i] = Math.exp(x[r * width + i] - max); sum += out[r * width + i]; }
    for (let i = 0; i < width; i++) out[r * width + i] /= sum;
  }
  return out;
}

const SCORE: Record<MoeScore, (x: number) => number> = { softmax: (x) => x, sigmoid: UNARY_MEANING.sigmoid, none: (x) => x };

/** Top-k over rows of `scores` [T, E] into routing [T, k, 2]; see the header for ties. */
export function topk(scores: Values, E: number, a: MoeGating): Float64Array {
  const T = scores.length / E;
  const out = new Float64Array(T * a.k * 2);
  for (let t = 0; t < T; t++) {
    const order = llamaArgsort(scores, t * E, E);
    const w = new Float64Array(a.k);
    for (let j = 0; j < a.k; j++) {
      w[j] = scores[t * E + order[j]];
      out[(t * a.k + j) * 2 + 1] = order[j];
    }
    const g = a.softmax ? softmaxRows(w, a.k) : w;
    let sum = 0;
    for (let j = 0; j < a.k; j++) sum += g[j];
    for (let j = 0; j < a.k; j++) out[(t * a.k + j) * 2] = (a.renorm ? g[j] / sum : g[j]) * a.scale;
  }
  return out;
}

/** x [T, K] @ router [K, E] (column e contiguous), then the score function. */
function routeScores(x: Values, router: Values, K: number, E: number, score: MoeScore): Float64Array {
  const T = x.length / K;
  const logits = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[t * K + k] * router[e * K + k];
      logits[t * E + e] = acc;
    }
  }
  return score === 'softmax' ? softmaxRows(logits, E) : logits.map(SCORE[score]);
}

/** One row of expert e: y[n] = sum_k x[xo + k] * w[e*K*N + n*K + k]. */
function expertRow(x: Values, xo: number, w: Values, e: number, K: number, N: number, out: Float64Array, oo: number): void {
  const base = e * K * N;
  for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += x[xo + k] * w[base + n * K + k];
    out[oo + n] = acc;
  }
}

/** The value of a MoE node, given its sources' values and T. */
export function moeValue(n: Node, s: readonly Values[], T: number): Float64Array {
  switch (n.op) {
    case 'softmax': return softmaxRows(s[0], n.shape.at(-1) as number);
    case 'topk': return topk(s[0], n.src[0].shape[1] as number, n.arg as OpArgs['topk']);
    case 'expert_matmul': {
      const [K, N, E] = n.src[1].shape as number[];
      const shared = n.src[0].shape.length === 2;
      const out = new Float64Array(T * E * N);
      for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) expertRow(s[0], shared ? t * K : (t * E + e) * K, s[1], e, K, N, out, (t * E + e) * N);
      return out;
    }
    case 'moe': {
      const [, E, D] = n.src[1].shape as number[];
      const k = n.src[0].shape[1] as number;
      const [r, y] = s;
      const out = new Float64Array(T * D);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < k; j++) {
          const w = r[(t * k + j) * 2], e = r[(t * k + j) * 2 + 1];
          for (let d = 0; d < D; d++) out[t * D + d] += w * y[(t * E + e) * D + d];
        }
      }
      return out;
    }
    case 'moe_route': {
      const a = n.arg as OpArgs['moe_route'];
      const [K, E] = n.src[1].shape as number[];
      return topk(routeScores(s[0], s[1], K, E, a.score), E, a);
    }
    case 'moe_experts': return moeExperts(n as Node<'moe_experts'>, s, T);
  }
  throw new Error(`not a MoE op: ${n.op}`);
}

function moeExperts(n: Node<'moe_experts'>, s: readonly Values[], T: number): Float64Array {
  const a = n.arg;
  const wi = a.input === 'silu_mul' ? 2 : 1;
  const ri = expertsRoutingIndex(a);
  const [K, N] = n.src[wi].shape as number[];
  const r = s[ri];
  const k = n.src[ri].shape[1] as number;
  let x: Values = s[0];
  if (a.input === 'silu_mul') x = Float64Array.from(s[0], (g, i) => UNARY_MEANING.silu(g) * s[1][i]);
  const rows = new Float64Array(T * k * N);
  const up = a.input === 'swiglu' ? new Float64Array(N) : null;
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const o = (t * k + j) * N, e = r[(t * k + j) * 2 + 1];
      const xo = a.input === 'shared' || a.input === 'swiglu' ? t * K : (t * k + j) * K;
      expertRow(x, xo, s[wi], e, K, N, rows, o);
      if (up) {
        expertRow(x, xo, s[2], e, K, N, up, 0);
        for (let i = 0; i < N; i++) rows[o + i] = UNARY_MEANING.silu(rows[o + i]) * up[i];
      }
    }
  }
  if (!a.combine) return rows;
  // Same order as the unfused graph: sum over slots first, then the residual.
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const w = r[(t * k + j) * 2];
      for (let d = 0; d < N; d++) out[t * N + d] += w * rows[(t * k + j) * N + d];
    }
  }
  if (a.residual) { const res = s[s.length - 1]; for (let i = 0; i < out.length; i++) out[i] = res[i] + out[i]; }
  return out;
}

/** The routing values of a step: one [T, k, 2] routing per MoE layer, in layer order. */
export function routingNodes(nodes: readonly Node[]): Node[] {
  return nodes.filter((n) => n.op === 'topk' || n.op === 'moe_route');
}

/** Experts and k of a routing node (topk or moe_route). */
export function routingShape(n: Node): { experts: number; k: number } {
  return { experts: (n.op === 'topk' ? n.src[0].shape[1] : n.src[1].shape[1]) as number, k: n.shape[1] as number };
}
