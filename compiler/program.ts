// The Program: what `schedule` produces and every backend and runtime consumes.
// It is plain JSON data (kernels, buffers, the per-step dispatch list, KV layout),
// so the runtime never re-derives the model, and byte and dispatch counts can be
// computed from it alone (see cost.ts).
import type { ModelInfo, ParamInfo } from './ir/graph.ts';
import type { BinaryFn, MoeScore, OpArgs, UnaryFn } from './ir/ops.ts';

/** An elementwise expression over a kernel's inputs (per element), constants inlined. */
export type ElementwiseExpr =
  | { kind: 'input'; index: number }
  | { kind: 'const'; value: number }
  | { kind: 'unary'; fn: UnaryFn; arg: ElementwiseExpr }
  | { kind: 'binary'; fn: BinaryFn; left: ElementwiseExpr; right: ElementwiseExpr };

/**
 * A backend-neutral kernel: what to compute, with every compile-time constant.
 * Binding names (in this order) are fixed per kind; `Step.args` maps them to buffers:
 *   embed:       tokens, table, out
 *   rmsnorm:     x, weight, out
 *   matmul:      prologue none: x, w, [res], out | rmsnorm: x, norm, w, [res], out | silu_mul: gate, up, w, [res], out
 *   rope:        x, positions, out
 *   kv_store:    k, v, positions, kcache, vcache
 *   attention:   q, positions, kcache, vcache, out
 *   elementwise: in0 .. in{inputs-1}, out
 *   moe_route:   x, router, out (the routing [T, k, 2], see ir/moe.ts) | direct (x = the scores): x, out
 *   moe_experts: input shared/slot: x, w, [routing], [res], out | silu_mul: gate, up, w, [routing], [res], out
 *                | swiglu: x, w (gate), w2 (up), routing, [res], out
 *                (dense: every expert for every token, no routing; k = experts and slot j = expert j)
 *   moe_combine: routing, y, out
 *   softmax:     x, out
 * Every kernel also receives the step uniform (number of tokens T) from the runtime.
 */
export type KernelSpec =
  | { kind: 'embed'; dim: number; vocab: number }
  | { kind: 'rmsnorm'; dim: number; eps: number }
  | { kind: 'matmul'; K: number; N: number; prologue: 'none' | 'rmsnorm' | 'silu_mul'; eps: number; residual: boolean }
  | { kind: 'rope'; heads: number; headDim: number; theta: number }
  | { kind: 'kv_store'; kvHeads: number; headDim: number; maxContext: number }
  | { kind: 'attention'; heads: number; kvHeads: number; headDim: number; maxContext: number; scale: number; window: number | null; causal: boolean }
  | { kind: 'elementwise'; width: number; inputs: number; expr: ElementwiseExpr }
  | { kind: 'moe_route'; K: number; experts: number; k: number; score: MoeScore; softmax: boolean; renorm: boolean; scale: number; direct: boolean }
  | ({ kind: 'moe_experts'; K: number; N: number; experts: number; k: number; dense: boolean } & OpArgs['moe_experts'])
  | { kind: 'moe_combine'; experts: number; k: number; width: number }
  | { kind: 'softmax'; width: number };

export type KernelKind = KernelSpec['kind'];

export const BINDINGS: { [K in KernelKind]: (spec: Extract<KernelSpec, { kind: K }>) => string[] } = {
  embed: () => ['tokens', 'table', 'out'],
  rmsnorm: () => ['x', 'weight', 'out'],
  matmul: (s) => [...(s.prologue === 'none' ? ['x'] : s.prologue === 'rmsnorm' ? ['x', 'norm'] : ['gate', 'up']), 'w', ...(s.residual ? ['res'] : []), 'out'],
  rope: () => ['x', 'positions', 'out'],
  kv_store: () => ['k', 'v', 'positions', 'kcache', 'vcache'],
  attention: () => ['q', 'positions', 'kcache', 'vcache', 'out'],
  elementwise: (s) => [...Array.from({ length: s.inputs }, (_, i) => `in${i}`), 'out'],
  moe_route: (s) => (s.direct ? ['x', 'out'] : ['x', 'router', 'out']),
  moe_experts: (s) => [...(s.input === 'silu_mul' ? ['gate', 'up'] : ['x']), 'w', ...(s.input === 'swiglu' ? ['w2'] : []), ...(s.dense ? [] : ['routing']), ...(s.residual ? ['res'] : []), 'out'],
  moe_combine: () => ['routing', 'y', 'out'],
  softmax: () => ['x', 'out'],
};

export function bindingNames(spec: KernelSpec): string[] {
  return (BINDINGS[spec.kind] as (s: KernelSpec) => string[])(spec);
}

/** The binding a kernel writes; every other binding is only read. */
export function writtenBindings(spec: KernelSpec): string[] {
  return spec.kind === 'kv_store' ? ['kcache', 'vcache'] : ['out'];
}

export type BufferKind = 'input' | 'param' | 'activation' | 'kv' | 'logits';

export interface BufferDecl {
  readonly name: string;
  readonly kind: BufferKind;
  readonly dtype: 'f32' | 'i32';
  /** Elements per token for per-step buffers (size = maxTokens * perToken); 0 for fixed-size ones. */
  readonly perToken: number;
  /** Elements of fixed-size buffers (params, KV); 0 for per-token ones. */
  readonly elements: number;
}

export interface Step {
  readonly kernel: string;
  /** Binding name -> buffer name. */
  readonly args: Readonly<Record<string, string>>;
  /** Which IR node(s) this dispatch computes, for traces and reports. */
  readonly label: string;
}

export interface Program {
  readonly format: 'infer-program/1';
  readonly model: ModelInfo;
  readonly params: readonly ParamInfo[];
  readonly buffers: readonly BufferDecl[];
  readonly kernels: readonly { readonly key: string; readonly spec: KernelSpec }[];
  /** The dispatches of one forward step over T tokens, in order. */
  readonly steps: readonly Step[];
  readonly logits: string;
  /** Passes that ran, in order (the pipeline's record). */
  readonly passes: readonly string[];
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
