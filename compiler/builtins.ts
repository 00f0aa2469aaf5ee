// The functions a spec can call, each with its signature and how it lowers to IR.
// Defaults come from config constants by their conventional names (norm_eps,
// rope_theta) so specs stay short, and from the kv_cache section (window).
import type { CallExpr, Loc } from '../dsl/ast.ts';
import type { GraphBuilder, Node } from './ir/graph.ts';
import type { Dim } from './ir/ops.ts';
import type { UnaryFn } from '../program/kernels.ts';
import { UNARY_FNS, UNARY_MEANING } from './ir/ops.ts';
import { at, describe, LowerError, tensor } from './lowerExpr.ts';
import { bool, lowerMoe, lowerSoftmax, lowerTopk, type ExpertValue } from './lowerMoe.ts';
import { attentionOverCache } from './ir/attention.ts';
import { LIMITS, showLimit } from './limits.ts';
import { configDefault } from './configKeys.ts';

export type Value =
  | { kind: 'tensor'; node: Node }
  | { kind: 'num'; value: number }
  | { kind: 'shape'; dims: Dim[] }
  | { kind: 'flag'; name: string }
  /** A top-k routing [T, k, 2] (see ir/moe.ts); only moe and softmax take it. */
  | { kind: 'routing'; node: Node }
  | ExpertValue;

export interface Scope {
  readonly b: GraphBuilder;
  lookup(name: string): Value | undefined;
  names(): Iterable<string>;
  /** The layer being unrolled (for cache and attention), or null at model level. */
  readonly layer: number | null;
  readonly config: ReadonlyMap<string, number>;
  readonly window: number | null;
  readonly positions: Node;
}

interface Arg { value: Value; loc: Loc }
interface CallCtx { scope: Scope; call: CallExpr; args: Arg[]; named: Map<string, Arg> }

interface Builtin {
  readonly signature: string;
  /** Shapes and meaning, for docs/language.md (scripts/languageDoc.ts generates it from here). */
  readonly doc: string;
  readonly positional: [number, number];
  readonly named: readonly string[];
  /** Bare identifiers accepted as flags in positional arguments. */
  readonly flags?: readonly string[];
  lower(c: CallCtx): Value;
}

function num(c: CallCtx, name: string, fallbackConfig: string, fallback: number): number {
  const a = c.named.get(name);
  if (!a) return c.scope.config.get(fallbackConfig) ?? fallback;
  if (a.value.kind !== 'num') throw new LowerError(`${name} must be a number, got ${describe(a.value)}`, a.loc);
  return a.value.value;
}

const t = (c: CallCtx, i: number, what: string): Node => tensor(c.args[i].value, c.args[i].loc, `${c.call.callee}'s ${what}`);
const node = (c: CallCtx, f: (b: GraphBuilder) => Node): Value => ({ kind: 'tensor', node: at(c.call.loc, () => f(c.scope.b)) });

/** An elementwise function of a tensor; of a number, the number (e.g. sqrt(dim) in a scale). */
const UNARY_DOC: Record<UnaryFn, string> = {
  silu: 'x * sigmoid(x)', gelu: 'GELU, tanh approximation: 0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3)))', relu: 'max(x, 0)',
  exp: 'e^x', neg: '-x (written as unary -)', sigmoid: '1 / (1 + e^-x)', tanh: 'tanh(x)', sqrt: 'square root',
};

function unary(fn: UnaryFn): Builtin {
  return {
    signature: 'x', positional: [1, 1], named: [],
    doc: `elementwise ${UNARY_DOC[fn]}; same shape as x. Of a number, a number (e.g. \`sqrt(dim)\` in a scale).`,
    lower: (c) => {
      const a = c.args[0].value;
      if (a.kind === 'num') return { kind: 'num', value: UNARY_MEANING[fn](a.value) };
      return node(c, (b) => b.node('unary', { fn }, [t(c, 0, 'argument')]));
    },
  };
}

export const BUILTINS: Record<string, Builtin> = {
  embed: {
    signature: 'tokens, table', positional: [2, 2], named: [],
    doc: 'tokens [T] (the builtin `tokens`), table [dim, vocab] -> [T, dim]: row tokens[t] of the table.',
    lower: (c) => node(c, (b) => b.node('embed', {}, [t(c, 0, 'token ids'), t(c, 1, 'table')])),
  },
  rmsnorm: {
    signature: 'x, weight, eps = norm_eps', positional: [2, 2], named: ['eps'],
    doc: 'x [T, ..., D], weight [D] -> same shape: each row of D divided by sqrt(mean(row^2) + eps), times weight (per head when x is [T, heads, head_dim]).',
    lower: (c) => {
      const eps = num(c, 'eps', 'norm_eps', configDefault('norm_eps'));
      if (!(eps > 0)) throw new LowerError(`eps must be positive, got ${eps}`, c.named.get('eps')?.loc ?? c.call.loc);
      return node(c, (b) => b.node('rmsnorm', { eps }, [t(c, 0, 'input'), t(c, 1, 'weight')]));
    },
  },
  rope: {
    signature: 'x [T, heads, head_dim], theta = rope_theta, neox = false', positional: [1, 1], named: ['theta', 'neox'],
    doc: 'same shape: rotary positions; pair i of each head rotates by position * theta^(-2i/head_dim). Pairs are (x[2i], x[2i+1]) (llama.cpp\'s normal RoPE), or (x[i], x[i + head_dim/2]) with neox = true (rotating halves: Qwen, Gemma, Phi-3).',
    lower: (c) => {
      const theta = num(c, 'theta', 'rope_theta', configDefault('rope_theta'));
      if (!(theta > 0)) throw new LowerError(`theta must be positive, got ${theta}`, c.named.get('theta')?.loc ?? c.call.loc);
      const neox = bool(c.named.get('neox'), false);
      return node(c, (b) => b.node('rope', neox ? { theta, neox } : { theta }, [t(c, 0, 'input'), c.scope.positions]));
    },
  },
  reshape: {
    signature: 'x, [dims]', positional: [2, 2], named: [],
    doc: 'the same elements in a new shape (row-major, no data movement); T stays the first dim.',
    lower: (c) => {
      const shape = c.args[1].value;
      if (shape.kind !== 'shape') throw new LowerError(`reshape's second argument must be a shape like [T, dim], got ${describe(shape)}`, c.args[1].loc);
      return node(c, (b) => b.node('reshape', { shape: shape.dims }, [t(c, 0, 'input')]));
    },
  },
  cache: {
    signature: 'k [T, kv_heads, head_dim], v [T, kv_heads, head_dim]', positional: [2, 2], named: [],
    doc: "appends this step's K and V to the layer's KV cache (kv_cache section) at the tokens' positions; only as attention's second argument, inside a layer.",
    lower: (c) => {
      const layer = c.scope.layer;
      if (layer === null) throw new LowerError('cache(k, v) can only be used inside a layer', c.call.loc);
      return node(c, (b) => b.node('kv_store', { layer, rope: null }, [t(c, 0, 'k'), t(c, 1, 'v'), c.scope.positions]));
    },
  },
  attention: {
    signature: 'q, cache(k, v), causal, window = W, scale = S, softcap = C', positional: [2, 3], named: ['window', 'scale', 'softcap'], flags: ['causal'],
    doc: 'q [T, heads, head_dim] -> [T, heads, head_dim]: softmax(q.k * scale) . v over the cached keys each token sees: up to its own position (causal), and only the last `window` of them (default: the kv_cache window; 0: no window, e.g. per layer from layer_index). scale defaults to 1/sqrt(head_dim). With softcap, scores s become softcap * tanh(s / softcap) (Gemma 2). Query head h reads KV head floor(h / (heads / kv_heads)).',
    lower: (c) => {
      const q = t(c, 0, 'query');
      const flag = c.args[2];
      if (flag && !(flag.value.kind === 'flag' && flag.value.name === 'causal')) throw new LowerError(`attention's third argument can only be the flag 'causal', got ${describe(flag.value)}`, flag.loc);
      if (c.args[1].value.kind !== 'tensor' || c.args[1].value.node.op !== 'kv_store') throw new LowerError("attention's second argument must be cache(k, v)", c.args[1].loc);
      const layer = c.scope.layer!;
      const headDim = q.shape[2];
      const w = c.named.get('window');
      let window = c.scope.window;
      if (w) {
        // 0 is no window (all earlier positions), so a per-layer window can be computed from layer_index.
        if (w.value.kind !== 'num' || !Number.isInteger(w.value.value) || w.value.value < 0) throw new LowerError('window must be a non-negative integer (0: no window)', w.loc);
        if (w.value.value > LIMITS.maxContext) throw new LowerError(`window ${w.value.value} is over the limit of ${showLimit(LIMITS.maxContext)} (the longest context)`, w.loc);
        window = w.value.value === 0 ? null : w.value.value;
      }
      const scale = c.named.has('scale') ? num(c, 'scale', '', 0) : typeof headDim === 'number' ? 1 / Math.sqrt(headDim) : 1;
      const cap = c.named.has('softcap') ? num(c, 'softcap', '', 0) : undefined;
      if (cap !== undefined && !(cap > 0 && Number.isFinite(cap))) throw new LowerError(`softcap must be a positive number, got ${cap}`, c.named.get('softcap')!.loc);
      const cache = c.args[1].value.node;
      // The unfused definition (scores, softmax, P.V); fuseAttention makes it one kernel.
      const arg = { layer, causal: !!flag, window, scale, ...(cap !== undefined ? { softcap: cap } : {}) };
      return node(c, (b) => attentionOverCache(b, q, cache, c.scope.positions, arg, c.scope.config.get('max_context') ?? configDefault('max_context')));
    },
  },
  slice: {
    signature: 'x [T, ..., N], start, len', positional: [3, 3], named: [],
    doc: '[T, ..., len]: elements start .. start + len - 1 of the last dim (splits a fused QKV or gate/up projection, Phi-3).',
    lower: (c) => {
      const int = (i: number, what: string) => {
        const v = c.args[i].value;
        if (v.kind !== 'num' || !Number.isInteger(v.value)) throw new LowerError(`slice's ${what} must be an integer, got ${describe(v)}`, c.args[i].loc);
        return v.value;
      };
      const start = int(1, 'start'), len = int(2, 'len');
      return node(c, (b) => b.node('slice', { start, len }, [t(c, 0, 'input')]));
    },
  },
  topk: {
    signature: 'scores [T, experts], k = top_k, renorm = true, scale = 1', positional: [1, 2], named: ['k', 'renorm', 'scale'],
    doc: "a routing [T, k, 2] for moe: each token's k highest-scoring experts (ties to llama.cpp's order) with weights: the chosen scores, divided by their sum (renorm), times scale. topk(softmax(h @ router)) is Mixtral's gating.",
    lower: (c) => lowerTopk(c),
  },
  softcap: {
    signature: 'x, cap', positional: [2, 2], named: [],
    doc: 'same shape: cap * tanh(x / cap) (soft-capping, e.g. Gemma 2\'s final logits); cap a positive number.',
    // cap * tanh(x / cap): Gemma 2's final-logit soft-capping, as three elementwise ops.
    lower: (c) => {
      const cap = c.args[1].value;
      if (cap.kind !== 'num' || !(cap.value > 0 && Number.isFinite(cap.value))) throw new LowerError(`softcap's cap must be a positive number, got ${describe(cap)}`, c.args[1].loc);
      return node(c, (b) => {
        const k = b.constant(cap.value);
        return b.node('binary', { fn: 'mul' }, [b.node('unary', { fn: 'tanh' }, [b.node('binary', { fn: 'div' }, [t(c, 0, 'input'), k])]), k]);
      });
    },
  },
  softmax: {
    signature: 'x (or a routing from topk)', positional: [1, 1], named: [],
    doc: 'softmax over the last dim; of a routing, softmax over the chosen experts\' scores (softmax(topk(...))).',
    lower: (c) => lowerSoftmax(c),
  },
  moe: {
    signature: 'h, topk(...), experts) { e => expert body }', positional: [3, 3], named: [],
    doc: "h [T, dim] -> [T, N]: the sum over each token's chosen experts of weight * body, where e.NAME in the body is expert e's slice of the 3-D param NAME_exps [in, out, experts].",
    lower: (c) => lowerMoe(c),
  },
  ...Object.fromEntries(UNARY_FNS.filter((f) => f !== 'neg').map((f) => [f, unary(f)])),
};
