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

export type UnaryFn = 'silu' | 'gelu' | 'relu' | 'exp' | 'neg' | 'sigmoid' | 'tanh' | 'sqrt';
export type BinaryFn = 'add' | 'sub' | 'mul' | 'div';

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
  /** src: [x [T, D], weight [D]] -> [T, D]: x / sqrt(mean(x^2) + eps) * weight. */
  rmsnorm: { eps: number };
  /** src: [x [T, K], w [K, N]] -> [T, N]. */
  matmul: NoArgs;
  /** src: [x] -> same elements, new shape (row-major, no data movement). */
  reshape: { shape: Shape };
  /** src: [x [T, H, D], positions [T]] -> [T, H, D]: llama.cpp "normal" (interleaved-pair) RoPE. */
  rope: { theta: number };
  /**
   * src: [k [T, KH, D], v [T, KH, D], positions [T]] -> cache token: appends K/V of `layer` at
   * the tokens' positions, stored in the model's KV format (kvStorage.ts). With `rope` set
   * (a theta), K is rotated by RoPE first: the fused KvAppend that fuseKvAppend produces.
   */
  kv_store: { layer: number; rope: number | null };
  /** src: [q [T, H, D], cache token, positions [T]] -> [T, H, D]: softmax(q.k^T * scale + mask) . v over the cache. */
  attention: { layer: number; causal: boolean; window: number | null; scale: number };
  unary: { fn: UnaryFn };
  /** Elementwise; the operands have equal shapes, or one of them is a scalar (shape []). */
  binary: { fn: BinaryFn };

  // ---- fused ops (produced by passes) ----
  /**
   * matmul with an optional prologue on its input and an optional residual add in its epilogue.
   * src by prologue:  none: [x, w, res?]   rmsnorm: [x, normWeight, w, res?]   silu_mul: [gate, up, w, res?]
   * meaning: y = P(x) @ w (+ res), where P is identity, rmsnorm(x, normWeight, eps) or silu(gate) * up.
   */
  fused_matmul: { prologue: 'none' | 'rmsnorm' | 'silu_mul'; eps: number; residual: boolean };
}

export type Op = keyof OpArgs;

export const OP_GROUPS: Record<'input' | 'plain' | 'fused', readonly Op[]> = {
  input: ['tokens', 'positions', 'param', 'const'],
  plain: ['embed', 'rmsnorm', 'matmul', 'reshape', 'rope', 'kv_store', 'attention', 'unary', 'binary'],
  fused: ['fused_matmul'],
};

/** Number of sources each op takes (a [min, max] range where optional sources exist). */
export function arity(op: Op, arg: OpArgs[Op]): [number, number] {
  switch (op) {
    case 'tokens': case 'positions': case 'param': case 'const': return [0, 0];
    case 'reshape': case 'unary': return [1, 1];
    case 'embed': case 'rmsnorm': case 'matmul': case 'rope': case 'binary': return [2, 2];
    case 'kv_store': case 'attention': return [3, 3];
    case 'fused_matmul': {
      const a = arg as OpArgs['fused_matmul'];
      const n = (a.prologue === 'none' ? 2 : 3) + (a.residual ? 1 : 0);
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
