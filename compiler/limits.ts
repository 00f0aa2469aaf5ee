// The language's size limits, checked once, up front, by the lowering (so by
// `infer check`, compile and run alike) and the same for every backend: a spec
// either passes here and every engine can at least try it, or it fails here at
// the config line or declaration that causes it. They are checked BEFORE the
// layer body is unrolled, so `layers = 1e9` is answered in milliseconds.
//
// What stays a run-time check: sizes the device decides (a WebGPU adapter's
// storage binding limit, host memory), reported by the engines by buffer name.
import type { KvCacheSpec, Loc, Model, ParamDecl } from '../dsl/ast.ts';
import { evalConstExpr } from '../dsl/config.ts';

export const LIMITS = {
  /** Unrolled layers: 8x the deepest real model (126, Llama 3.1 405B); compile time grows linearly (~3 ms a layer). */
  layers: 1024,
  /** Model width: 4x the widest real model (16384). */
  dim: 1 << 16,
  /** Vocabulary: 64x the largest real one (262144); each token's logits row is 4 bytes a word. */
  vocab: 1 << 24,
  /** Query heads: the fused attention spreads them over a grid dimension (WebGPU guarantees 65535). */
  heads: 1024,
  /**
   * Head width: the fused WebGPU attention kernel gives each (query head, 4 dims) of a
   * workgroup one invocation and keeps a head's row in registers, up to 256 wide; the CPU
   * engine would take any, so the language stops where WebGPU does (real models: <= 256).
   */
  headDim: 256,
  /** MoE experts: moe_route keeps one score per expert in workgroup memory (16 KiB by default). */
  experts: 1024,
  /** Experts chosen per token: moe_route keeps the chosen ones in a private array. */
  topK: 64,
  /**
   * Context: 1M tokens (8x Llama 3's 128k). Positions, KV slots and the unfused attention's
   * [heads, max_context] scores row per token must stay well inside u32 indexes.
   */
  maxContext: 1 << 20,
  /**
   * Graph nodes after unrolling: compile time grows with them (~0.1 ms a node per pass
   * without V8's optimiser, as the CLI runs). 2^16 is 500 layers of a Llama block 4x over.
   */
  nodes: 1 << 16,
  /** Any one axis of a parameter or activation. */
  axis: 1 << 24,
  /**
   * Elements of one tensor (a param, or one token's row of an activation): 2^30 f32 values
   * are 4 GiB, the most one buffer can be bound as (WebGPU sizes bindings in u32 bytes) and
   * what a u32 element index in the kernels addresses; the CPU engine holds a param in one
   * Float32Array.
   */
  tensorElements: 2 ** 30,
  /** All params together: 2^38 f32 values (1 TiB), above any real model (405B). */
  totalElements: 2 ** 38,
} as const;

/** `2^30` for large powers of two, else the number itself. */
export function showLimit(n: number): string {
  const log = Math.log2(n);
  return Number.isInteger(log) && n > 65536 ? `2^${log}` : String(n);
}

type Err = (loc: Loc, message: string) => void;

/**
 * Checks the model-level config values against LIMITS. `entryLoc` locates a
 * config constant's line. Values are already known to be positive integers.
 */
export function checkConfigLimits(c: ReadonlyMap<string, number>, kv: KvCacheSpec, kvLoc: (key: string) => Loc, entryLoc: (name: string) => Loc, err: Err): void {
  const limit = (name: string, max: number, why: string) => {
    const v = c.get(name);
    if (v !== undefined && v > max) err(entryLoc(name), `config '${name}' is ${v}, over the limit of ${showLimit(max)} (${why})`);
  };
  limit('layers', LIMITS.layers, 'layers are unrolled at compile time');
  limit('dim', LIMITS.dim, 'the model width');
  limit('vocab', LIMITS.vocab, 'the vocabulary size');
  limit('heads', LIMITS.heads, 'query heads');
  limit('kv_heads', LIMITS.heads, 'KV heads');
  limit('head_dim', LIMITS.headDim, "the WebGPU attention kernel's widest head");
  limit('max_context', LIMITS.maxContext, 'the longest context');
  // `experts` and `top_k` are conventions, not required: checked when present and
  // whole numbers (lowerMoe checks the values actually passed to moe and topk).
  for (const [name, max] of [['experts', LIMITS.experts], ['top_k', LIMITS.topK]] as const) {
    const v = c.get(name);
    if (v !== undefined && Number.isInteger(v) && v > max) err(entryLoc(name), `config '${name}' is ${v}, over the limit of ${max} (${name === 'experts' ? 'MoE experts' : 'experts chosen per token'})`);
  }
  if (kv.window !== null && kv.window > LIMITS.maxContext) err(kvLoc('window'), `kv_cache window ${kv.window} is over the limit of ${showLimit(LIMITS.maxContext)} (the longest context)`);
}

/** A param's shape from config numbers alone; null when it uses T or another non-number (the lowering reports those). */
function staticShape(p: ParamDecl, c: ReadonlyMap<string, number>): number[] | null {
  const dims: number[] = [];
  for (const d of p.shape) {
    const r = evalConstExpr(d, (n) => c.get(n));
    if (!r || !r.ok || !Number.isInteger(r.value) || r.value <= 0) return null;
    dims.push(r.value);
  }
  return dims;
}

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Checks one param's axes and element count; returns its element count (0 when unknown). */
function checkParam(p: ParamDecl, c: ReadonlyMap<string, number>, err: Err): number {
  const shape = staticShape(p, c);
  if (!shape) return 0;
  const big = shape.find((d) => d > LIMITS.axis);
  if (big !== undefined) {
    err(p.shapeLoc, `parameter '${p.name}' has an axis of ${big}, over the limit of ${showLimit(LIMITS.axis)} per axis`);
    return 0;
  }
  const n = product(shape);
  if (n > LIMITS.tensorElements) {
    err(p.shapeLoc, `parameter '${p.name}' [${shape.join(', ')}] has ${n} elements (${gib(n)} as f32), over the limit of ${showLimit(LIMITS.tensorElements)} elements (4 GiB) per tensor`);
    return 0;
  }
  return n;
}

const gib = (elements: number): string => `${((elements * 4) / 2 ** 30).toFixed(1)} GiB`;

/**
 * Checks every param, the layer's once (each unrolled copy has the same shape), and
 * their total over all layers, which is reported at the `layers` line.
 */
export function checkParamLimits(ast: Model, c: ReadonlyMap<string, number>, entryLoc: (name: string) => Loc, err: Err): void {
  let total = 0;
  for (const p of ast.params) total += checkParam(p, c, err);
  const layers = c.get('layers') ?? 0;
  let perLayer = 0;
  for (const p of ast.layer?.params ?? []) perLayer += checkParam(p, c, err);
  total += perLayer * layers;
  if (total > LIMITS.totalElements) {
    err(entryLoc('layers'), `the params total ${total} elements (${gib(total)} as f32; ${perLayer} per layer x ${layers} layers), over the limit of ${showLimit(LIMITS.totalElements)} elements`);
  }
}

/** The check the graph builder applies to every activation it types: one token's row (T counted as 1). */
export function activationTooLarge(shape: readonly (number | 'T')[]): string | null {
  let n = 1;
  for (const d of shape) {
    if (d === 'T') continue;
    if (d > LIMITS.axis) return `the result has an axis of ${d}, over the limit of ${showLimit(LIMITS.axis)} per axis`;
    n *= d;
  }
  if (n > LIMITS.tensorElements) {
    const per = shape.includes('T') ? ' per token' : '';
    return `the result [${shape.join(', ')}] has ${n} elements${per} (${gib(n)} as f32), over the limit of ${showLimit(LIMITS.tensorElements)} elements (4 GiB) per tensor`;
  }
  return null;
}
