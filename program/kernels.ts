// Kernels: the backend-neutral description of each kernel kind (what to compute, with
// every compile-time constant), its bindings in order with their element types, and the
// deterministic key identical kernels share. Every renderer (WGSL, CUDA) and the runtime's
// binder read the binding lists and element types from here, so they cannot disagree.
import type { KvDType } from './model.ts';
import type { CompactType } from './quant.ts';

export type UnaryFn = 'silu' | 'gelu' | 'relu' | 'exp' | 'neg' | 'sigmoid' | 'tanh' | 'sqrt';
export type BinaryFn = 'add' | 'sub' | 'mul' | 'div';
/** What a matmul computes from its inputs first: x, rmsnorm(x) * norm, silu(gate) * up or gelu(gate) * up. */
export type MatmulPrologue = 'none' | 'rmsnorm' | 'silu_mul' | 'gelu_mul';
/** The function from router logits to the scores top-k selects on. */
export type MoeScore = 'softmax' | 'sigmoid' | 'none';
/** What a moe_experts kernel reads and whether it combines the chosen experts' rows (ir/ops.ts has the meaning). */
export type MoeExpertsArgs = { input: 'shared' | 'slot' | 'silu_mul' | 'swiglu'; combine: boolean; residual: boolean };

/** An elementwise expression over a kernel's inputs (per element), constants inlined. */
export type ElementwiseExpr =
  /**
   * Input `index` at the element's index in the step; with `period`, an input without T of
   * `period` elements that repeats along each token's row: element e of a row reads e mod period;
   * with `perToken`, an input of one element per token that repeats along its token's row.
   */
  | { kind: 'input'; index: number; period?: number; perToken?: true }
  | { kind: 'const'; value: number }
  | { kind: 'unary'; fn: UnaryFn; arg: ElementwiseExpr }
  | { kind: 'binary'; fn: BinaryFn; left: ElementwiseExpr; right: ElementwiseExpr };

/**
 * A backend-neutral kernel: what to compute, with every compile-time constant.
 * Binding names (in this order) are fixed per kind; `Step.args` maps them to buffers:
 *   embed:       tokens, table, out
 *   rmsnorm:     x, weight, out
 *   matmul:      prologue none: x, w, [bias], [res], out | rmsnorm: x, norm, w, [bias], [res], out
 *                | silu_mul, gelu_mul: gate, up, w, [bias], [res], out
 *   rope:        x, positions, [norm], out
 *   kv_append:   k, v, positions, kv_slot, [norm], kcache, vcache
 *   attention:   q, positions, kv_seq, kv_table, kcache, vcache, out
 *                (pages, scales and the packed block table: program/kv.ts). With
 *                splits > 1 (flash-decoding) each token's key range is split across `splits`
 *                workgroups and `out` receives partial results [T][heads][splits][headDim + 2]
 *                (running max, sum, unnormalised P.V) that attention_merge combines.
 *   attention_merge: part, out
 *   elementwise: in0 .. in{inputs-1}, out
 *   slice:       x, out
 *   moe_route:   x, router, out (the routing [T, k, 2], see ir/moe.ts) | direct (x = the scores): x, out
 *   moe_experts: input shared/slot: x, w, [routing], [res], out | silu_mul: gate, up, w, [routing], [res], out
 *                | swiglu: x, w (gate), w2 (up), routing, [res], out
 *                (dense: every expert for every token, no routing; k = experts and slot j = expert j)
 *   moe_combine: routing, y, out
 *   softmax:     x, out
 *   argmax:      x (the logits), rows (i32: the logits row of each sequence), out (i32: its
 *                largest entry's index, the lowest on ties). Greedy sampling on the device: the
 *                runtime dispatches it after a forward (one row per sequence), never a Program step.
 * Every kernel also receives the step uniform (number of tokens T) from the runtime.
 * `wtype` (matmul `w`, embed `table`, moe_experts `w` and, for swiglu, `w2`): the weight
 * stays in that compact format (f16 or blocks) on the device (quant.ts has the layout; a 3-D expert
 * weight is laid out as its flat [K, N * experts] matrix) and the kernel dequantises in
 * registers; absent means f32, so f32 kernels keep their keys.
 */
/**
 * Routed rows a moe_experts kernel serves per pass over an expert's weights: a step reads
 * each chosen expert's weights once per this many of its rows (once in every decode step
 * of up to this many sequences per expert). Part of the kernel contract, so the cost model
 * counts what every backend reads.
 */
export const MOE_ROWS_PER_PASS = 8;

export type KernelSpec =
  /**
   * idOffset / vocabTotal (a split table, compiler/splitParams.ts): `table` holds ids
   * [idOffset, idOffset + vocab) of a vocabTotal vocabulary; the kernel writes the rows of
   * the tokens in that range only (and, in the part at 0, the zero rows of ids outside
   * the whole vocabulary), so the parts' dispatches together write every row once.
   */
  | { kind: 'embed'; dim: number; vocab: number; wtype?: CompactType; idOffset?: number; vocabTotal?: number }
  /** rmsnorm of `rows` rows of `dim` per token (rows absent: 1; e.g. per-head q/k norms). */
  | { kind: 'rmsnorm'; dim: number; eps: number; rows?: number }
  /**
   * colOffset / outCols (a split weight, compiler/splitParams.ts): `w` is columns
   * [colOffset, colOffset + N) of the weight, and `out` (and `res`) rows are outCols wide;
   * this dispatch computes and writes those N columns of each row only.
   * The epilogue (each present only when set, so other matmuls keep their keys): bias adds
   * `bias` [outCols] (the whole row's bias: a part reads its columns colOffset + n), then
   * softcap caps y to softcap * tanh(y / softcap), then residual adds `res` (ir/ops.ts).
   */
  | { kind: 'matmul'; K: number; N: number; prologue: MatmulPrologue; eps: number; residual: boolean; wtype?: CompactType; colOffset?: number; outCols?: number; bias?: true; softcap?: number }
  /**
   * neox (present only when true, so other kernels keep their keys): rotating halves (ir/ops.ts `rope`).
   * norm (an eps, present only when set): each head's row is RMS-normalised by `norm` [headDim] first.
   */
  | { kind: 'rope'; heads: number; headDim: number; theta: number; neox?: boolean; norm?: number }
  /** norm (an eps, present only when set): each K row is RMS-normalised by `norm` [headDim] before RoPE (ir/ops.ts `kv_store`). */
  | { kind: 'kv_append'; kvHeads: number; headDim: number; pageSize: number; dtype: KvDType; rope: number | null; neox?: boolean; norm?: number }
  /** softcap (present only when set): scores become softcap * tanh(score / softcap) (ir/ops.ts). */
  | { kind: 'attention'; heads: number; kvHeads: number; headDim: number; pageSize: number; dtype: KvDType; scale: number; window: number | null; causal: boolean; splits: number; softcap?: number }
  | { kind: 'attention_merge'; heads: number; headDim: number; splits: number }
  | { kind: 'elementwise'; width: number; inputs: number; expr: ElementwiseExpr }
  /** Columns start .. start + len - 1 of each of `rows` rows of `width` per token (ir/ops.ts `slice`). */
  | { kind: 'slice'; width: number; rows: number; start: number; len: number }
  | { kind: 'moe_route'; K: number; experts: number; k: number; score: MoeScore; softmax: boolean; renorm: boolean; scale: number; direct: boolean }
  | ({ kind: 'moe_experts'; K: number; N: number; experts: number; k: number; dense: boolean; wtype?: CompactType } & MoeExpertsArgs)
  | { kind: 'moe_combine'; experts: number; k: number; width: number }
  /** Softmax of `rows` rows of `width` per token (rows absent: 1). */
  | { kind: 'softmax'; width: number; rows?: number }
  /** The index of the largest of `width` values, per requested row (greedy sampling on the device). */
  | { kind: 'argmax'; width: number }
  /** The unfused attention (--no-fuse attention): scores [T, heads, context] against the paged cache, then P.V. */
  | { kind: 'attn_scores'; heads: number; kvHeads: number; headDim: number; pageSize: number; dtype: KvDType; scale: number; window: number | null; causal: boolean; context: number; softcap?: number }
  | { kind: 'attn_values'; heads: number; kvHeads: number; headDim: number; pageSize: number; dtype: KvDType; window: number | null; causal: boolean; context: number };

export type KernelKind = KernelSpec['kind'];

export const BINDINGS: { [K in KernelKind]: (spec: Extract<KernelSpec, { kind: K }>) => string[] } = {
  embed: () => ['tokens', 'table', 'out'],
  rmsnorm: () => ['x', 'weight', 'out'],
  matmul: (s) => [...(s.prologue === 'none' ? ['x'] : s.prologue === 'rmsnorm' ? ['x', 'norm'] : ['gate', 'up']), 'w', ...(s.bias ? ['bias'] : []), ...(s.residual ? ['res'] : []), 'out'],
  rope: (s) => ['x', 'positions', ...(s.norm !== undefined ? ['norm'] : []), 'out'],
  kv_append: (s) => ['k', 'v', 'positions', 'kv_slot', ...(s.norm !== undefined ? ['norm'] : []), 'kcache', 'vcache'],
  attention: () => ['q', 'positions', 'kv_seq', 'kv_table', 'kcache', 'vcache', 'out'],
  attention_merge: () => ['part', 'out'],
  elementwise: (s) => [...Array.from({ length: s.inputs }, (_, i) => `in${i}`), 'out'],
  slice: () => ['x', 'out'],
  moe_route: (s) => (s.direct ? ['x', 'out'] : ['x', 'router', 'out']),
  moe_experts: (s) => [...(s.input === 'silu_mul' ? ['gate', 'up'] : ['x']), 'w', ...(s.input === 'swiglu' ? ['w2'] : []), ...(s.dense ? [] : ['routing']), ...(s.residual ? ['res'] : []), 'out'],
  moe_combine: () => ['routing', 'y', 'out'],
  softmax: () => ['x', 'out'],
  argmax: () => ['x', 'rows', 'out'],
  attn_scores: () => ['q', 'positions', 'kv_seq', 'kv_table', 'kcache', 'out'],
  attn_values: () => ['p', 'positions', 'kv_seq', 'kv_table', 'vcache', 'out'],
};

export function bindingNames(spec: KernelSpec): string[] {
  return (BINDINGS[spec.kind] as (s: KernelSpec) => string[])(spec);
}

/** The binding a kernel writes; every other binding is only read. */
export function writtenBindings(spec: KernelSpec): string[] {
  return spec.kind === 'kv_append' ? ['kcache', 'vcache'] : ['out'];
}

/** A deterministic key from every parameter of a kernel: identical kernels share it and are emitted once. */
export function kernelKey(spec: KernelSpec): string {
  const parts = Object.entries(spec).filter(([k]) => k !== 'kind' && k !== 'expr')
    .map(([k, v]) => `${k}${typeof v === 'number' ? String(v).replace(/[^0-9a-zA-Z]/g, 'p') : v === null ? 'none' : String(v)}`);
  const expr = spec.kind === 'elementwise' ? `_${shortHash(JSON.stringify(spec.expr))}` : '';
  return `${spec.kind}_${parts.join('_')}${expr}`;
}

function shortHash(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Element type of a binding as every backend declares it: the Program's one answer. */
export type ElementType = 'i32' | 'u32' | 'f32';

/** Bindings the runtime fills with token ids, positions, slots and the packed block tables. */
const INDEX_BINDINGS: ReadonlySet<string> = new Set(['tokens', 'positions', 'kv_slot', 'kv_seq', 'kv_table']);
/** Bindings that hold a weight in a compact format (f16 pairs or blocks, as u32 words) when the kernel's `wtype` is set. */
const BLOCK_WEIGHT_BINDINGS: ReadonlySet<string> = new Set(['table', 'w', 'w2']);

/**
 * i32 for indices; u32 for packed data: KV pages in f16 / int8 / int4 (program/kv.ts) and
 * weights kept in blocks (program/quant.ts); f32 for everything else.
 */
export function bindingElementType(spec: KernelSpec, binding: string): ElementType {
  if (INDEX_BINDINGS.has(binding) || (spec.kind === 'argmax' && binding !== 'x')) return 'i32';
  if ((binding === 'kcache' || binding === 'vcache') && 'dtype' in spec && spec.dtype !== 'f32') return 'u32';
  if (BLOCK_WEIGHT_BINDINGS.has(binding) && 'wtype' in spec && spec.wtype) return 'u32';
  return 'f32';
}
