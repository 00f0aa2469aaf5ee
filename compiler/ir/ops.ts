// The op catalogue: every IR op, its arguments and its sources, in one place.
// An op's meaning lives in interpret.ts; its shape rule in shapes.ts. Fused ops
// are ordinary ops whose meaning is the composition of the ops they replace.

/** A dimension: a concrete size, or the symbolic number of tokens in this step. */
export type Dim = number | 'T';
export type Shape = readonly Dim[];
/** f32 tensors, i32 token/position vectors, and `cache` (a KV-store effect token, no data). */
export type DType = 'f32' | 'i32' | 'cache';

/** Ops without arguments. */
export type NoArgs = Record<never, never>;

import type { BinaryFn, MatmulPrologue, MoeExpertsArgs, MoeScore, UnaryFn } from '../../program/kernels.ts';

/** Arguments per op. Sources are listed in the comment: their order is part of the op. */
export interface OpArgs {
  // ---- inputs ----
  /** Token ids of this step, [T] i32. */
  tokens: NoArgs;
  /** Absolute position of each token in its sequence, [T] i32. */
  positions: NoArgs;
  /** A named weight. 2-D params [K, N] are stored ggml-style: element (k, n) at n*K + k. */
  param: { name: string };
  /** A scalar constant, shape []. */
  const: { value: number };

  // ---- plain ops ----
  /** src: [tokens [T], table [D, V]] -> [T, D]: row tokens[t] of the table. */
  embed: NoArgs;
  /** src: [x [T, ..., D], weight [D]] -> same shape: each row of D: x / sqrt(mean(x^2) + eps) * weight. */
  rmsnorm: { eps: number };
  /** src: [x [T, K], w [K, N]] -> [T, N]. */
  matmul: NoArgs;
  /** src: [x] -> same elements, new shape (row-major, no data movement). */
  reshape: { shape: Shape };
  /**
   * src: [x [T, H, D], positions [T]] -> [T, H, D]: RoPE. Pair i of a head (i < D/2) rotates by
   * pos * theta^(-2i/D); the pair is (x[2i], x[2i+1]) in llama.cpp's "normal" style, and
   * (x[i], x[i + D/2]) with `neox` (rotating halves: GPT-NeoX, Qwen, Gemma, Phi-3).
   * With `norm` (an eps; src: [x, positions, normWeight [D]]), each head's row is RMS-normalised
   * first: rope(rmsnorm(x, normWeight, norm)), Qwen3's per-head q norm (fuseQkNorm.ts).
   */
  rope: { theta: number; neox?: boolean; norm?: number };
  /**
   * src: [k [T, KH, D], v [T, KH, D], positions [T]] -> cache token: appends K/V of `layer` at
   * the tokens' positions, stored in the model's KV format (program/kv.ts). With `rope` set
   * (a theta), K is rotated by RoPE first (neox: rotating halves, as `rope`): the fused
   * KvAppend that fuseKvAppend produces. With `norm` (an eps; src: [k, v, positions, normWeight [D]]),
   * each K head row is RMS-normalised before the rotation (Qwen3's k norm, fuseQkNorm.ts).
   */
  kv_store: { layer: number; rope: number | null; neox?: boolean; norm?: number };
  /**
   * src: [q [T, H, D], cache token, positions [T]] -> scores [T, H, context]: q.k^T * scale
   * against key j of the token's sequence where j is visible (j <= position when causal,
   * j < the sequence's length otherwise, and j > position - window when windowed), -inf
   * elsewhere. Query head h reads KV head floor(h / (H / KH)). (attention.ts) With `softcap`
   * (Gemma 2), a visible score s becomes softcap * tanh(s / softcap).
   */
  attn_scores: { layer: number; causal: boolean; window: number | null; scale: number; context: number; softcap?: number };
  /** src: [p [T, H, context], cache token, positions [T]] -> [T, H, headDim]: sum over the visible keys j of p[j] * v[j]. */
  attn_values: { layer: number; causal: boolean; window: number | null; headDim: number };
  /**
   * src: [q [T, H, D], cache token, positions [T]] -> [T, H, D]:
   * attn_values(softmax(attn_scores(q))), the fused PagedAttention that fuseAttention makes.
   */
  attention: { layer: number; causal: boolean; window: number | null; scale: number; softcap?: number };
  /**
   * src: [x [T, ..., N]] -> [T, ..., len]: elements start .. start + len - 1 of the last dim
   * (a fused QKV or gate/up projection split into its parts, Phi-3).
   */
  slice: { start: number; len: number };
  /** src: [x] -> same shape: an elementwise function (UNARY_MEANING below). */
  unary: { fn: UnaryFn };
  /**
   * Elementwise; the operands have equal shapes, or one of them is a scalar (shape []), or one
   * has no T and its shape is a suffix of the other's (a bias [N] added to [T, N], a weight [D]
   * multiplying [T, H, D]): it repeats along the leading dims (element i reads i mod its size);
   * or one is [T, 1] (one number per token, e.g. Qwen2-MoE's shared-expert gate): it repeats
   * along its token's row.
   */
  binary: { fn: BinaryFn };

  // ---- mixture of experts (moe.ts holds their meaning; see there for the routing layout) ----
  /** src: [x [T, N]] -> [T, N]: softmax over the last dim. */
  softmax: NoArgs;
  /**
   * src: [scores [T, E]] -> routing [T, k, 2]: per token its k chosen experts (highest score first,
   * ties to the lower index) as (weight, expert index). weight = the chosen score, then softmax
   * over the k chosen (softmax), or divided by their sum (renorm), then times scale.
   */
  topk: MoeGating;
  /** src: [x [T, K] or [T, E, K], w [K, N, E]] -> [T, E, N]: every expert's matmul (dense meaning). */
  expert_matmul: NoArgs;
  /** src: [routing [T, k, 2], y [T, E, D]] -> [T, D]: sum over the chosen experts of weight * y. */
  moe: NoArgs;

  // ---- fused ops (produced by passes) ---- (produced by passes) ----
  /**
   * matmul with an optional prologue on its input and an optional epilogue: a bias, soft-capping
   * and a residual add, in that order.
   * src by prologue:  none: [x, w, bias?, res?]   rmsnorm: [x, normWeight, w, bias?, res?]
   *                   silu_mul / gelu_mul: [gate, up, w, bias?, res?]
   * meaning: y = P(x) @ w, where P is identity, rmsnorm(x, normWeight, eps), silu(gate) * up or
   * gelu(gate) * up (Gemma's gated GELU); then y + bias (bias [N], repeated over the tokens),
   * then softcap * tanh(y / softcap), then y + res. `bias` and `softcap` are present only when
   * set (fuseBias.ts, fuseSoftcap.ts), so other matmuls keep their kernel keys.
   */
  fused_matmul: { prologue: MatmulPrologue; eps: number; residual: boolean; bias?: true; softcap?: number };
  /** src: [x [T, K], router [K, E]] -> routing [T, k, 2] = topk(score(x @ router)). */
  moe_route: MoeRouteArgs;
  /**
   * The chosen experts' matmuls only, grouped by expert. src by input:
   *   shared: [x [T, K], w [K, N, E], routing, res?]   slot: [x [T, k, K], w, routing, res?]
   *   silu_mul: [gate [T, k, K], up [T, k, K], w, routing, res?]
   *   swiglu: [x [T, K], wGate [K, N, E], wUp [K, N, E], routing, res?]: silu(x @ wGate) * (x @ wUp)
   * Row (t, j) uses expert routing[t, j].index. Without combine: -> [T, k, N]. With combine:
   * -> [T, N], the rows summed with their routing weights (+ res).
   */
  moe_experts: MoeExpertsArgs;
}

/** How routing weights are derived from the chosen scores (see `topk`). */
export type MoeGating = { k: number; softmax: boolean; renorm: boolean; scale: number };
export type MoeRouteArgs = { k: number; softmax: boolean; renorm: boolean; scale: number; score: MoeScore };

export type Op = keyof OpArgs;

/** Number of sources each op takes (a [min, max] range where optional sources exist). */
export function arity(op: Op, arg: OpArgs[Op]): [number, number] {
  switch (op) {
    case 'tokens': case 'positions': case 'param': case 'const': return [0, 0];
    case 'reshape': case 'unary': case 'softmax': case 'topk': case 'slice': return [1, 1];
    case 'rope': return (arg as OpArgs['rope']).norm !== undefined ? [3, 3] : [2, 2];
    case 'kv_store': return (arg as OpArgs['kv_store']).norm !== undefined ? [4, 4] : [3, 3];
    case 'embed': case 'rmsnorm': case 'matmul': case 'binary': case 'expert_matmul': case 'moe': case 'moe_route': return [2, 2];
    case 'moe_experts': {
      const a = arg as OpArgs['moe_experts'];
      const n = (a.input === 'silu_mul' || a.input === 'swiglu' ? 4 : 3) + (a.residual ? 1 : 0);
      return [n, n];
    }
    case 'attention': case 'attn_scores': case 'attn_values': return [3, 3];
    case 'fused_matmul': {
      const a = arg as OpArgs['fused_matmul'];
      const n = (a.prologue === 'none' ? 2 : 3) + (a.bias ? 1 : 0) + (a.residual ? 1 : 0);
      return [n, n];
    }
  }
}

export const UNARY_FNS: readonly UnaryFn[] = ['silu', 'gelu', 'relu', 'exp', 'neg', 'sigmoid', 'tanh', 'sqrt'];
export const BINARY_FNS: readonly BinaryFn[] = ['add', 'sub', 'mul', 'div'];

/** The scalar meaning of each elementwise function, in float64. Backends mirror these formulas. */
export const UNARY_MEANING: Record<UnaryFn, (x: number) => number> = {
  silu: (x) => x / (1 + Math.exp(-x)),
  gelu: (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))),
  relu: (x) => (x > 0 ? x : 0),
  exp: (x) => Math.exp(x),
  neg: (x) => -x,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  tanh: (x) => Math.tanh(x),
  sqrt: (x) => Math.sqrt(x),
};

export const BINARY_MEANING: Record<BinaryFn, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
};
