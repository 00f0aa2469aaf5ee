// The typed AST of a .infer model: what compiler/lower.ts consumes.
// Every node carries a `loc` so later stages can report errors in the spec.
// The AST is syntax-shaped (expressions are not evaluated or typed here);
// config values are evaluated by `evaluateConfig`, kv_cache settings by
// `resolveKvCache`, and tensor shapes are checked by the lowering.
import type { Loc } from './loc.ts';

export type { Loc } from './loc.ts';

export type BinaryOp = '+' | '-' | '*' | '/' | '%' | '@';

export interface NumExpr {
  kind: 'num';
  value: number;
  /** Source spelling; `10000.0` vs `10000` tells a float literal from an int. */
  text: string;
  loc: Loc;
}
export interface IdentExpr {
  kind: 'ident';
  name: string;
  loc: Loc;
}
export interface BinaryExpr {
  kind: 'binary';
  op: BinaryOp;
  left: Expr;
  right: Expr;
  /** The operator token itself, for errors about the operation. */
  opLoc: Loc;
  loc: Loc;
}
export interface NegExpr {
  kind: 'neg';
  arg: Expr;
  loc: Loc;
}
export interface NamedArg {
  name: string;
  value: Expr;
  /** Spans `name = value`. */
  loc: Loc;
}
export interface CallExpr {
  kind: 'call';
  callee: string;
  calleeLoc: Loc;
  /** Positional arguments in order; positional ones always precede named. */
  args: Expr[];
  named: NamedArg[];
  /** `f(args) { param => body }`: a block-bodied call (moe's expert body). */
  block?: LambdaBlock;
  loc: Loc;
}
export interface LambdaBlock {
  param: string;
  paramLoc: Loc;
  body: Expr;
  loc: Loc;
}
export interface MemberExpr {
  kind: 'member';
  object: Expr;
  name: string;
  loc: Loc;
}
export interface ListExpr {
  kind: 'list';
  items: Expr[];
  loc: Loc;
}
export type Expr = NumExpr | IdentExpr | BinaryExpr | NegExpr | CallExpr | MemberExpr | ListExpr;

/** `name = value` in config. */
export interface ConfigEntry {
  name: string;
  nameLoc: Loc;
  value: Expr;
  loc: Loc;
}

/** `key = value` in kv_cache (validated by resolveKvCache). */
export interface KvCacheEntry {
  key: string;
  keyLoc: Loc;
  value: Expr;
  loc: Loc;
}

/** `weights gguf` or `weights random(seed = 7)`. */
export interface WeightsDecl {
  binding: string;
  bindingLoc: Loc;
  args: NamedArg[];
  loc: Loc;
}

/** `name: [d0, d1, ...]`: a parameter tensor (ggml order [in, out]) or a layer input. */
export interface ParamDecl {
  name: string;
  nameLoc: Loc;
  shape: Expr[];
  shapeLoc: Loc;
  loc: Loc;
}

/** `target = value`, at model level or in a layer body. */
export interface Assign {
  kind: 'assign';
  target: string;
  targetLoc: Loc;
  value: Expr;
  loc: Loc;
}

/**
 * `layer NAME (inputs) -> [shape] { params? assignments return }`. Applied
 * `layers` times where it appears among the model statements; its params
 * bind per layer index (blk.N.name).
 */
export interface LayerDecl {
  kind: 'layer';
  name: string;
  nameLoc: Loc;
  inputs: ParamDecl[];
  output: Expr[];
  outputLoc: Loc;
  params: ParamDecl[];
  body: Assign[];
  /** The final `return` expression. */
  result: Expr;
  returnLoc: Loc;
  loc: Loc;
}

export type Statement = Assign | LayerDecl;

/** A double-quoted string (only in `speculative`): a file name. */
export interface StringLit {
  kind: 'string';
  value: string;
  loc: Loc;
}

/** `key = value` in a speculative section (validated by dsl/speculative.ts). */
export interface SpecEntry {
  key: string;
  keyLoc: Loc;
  value: Expr | StringLit;
  loc: Loc;
}

/** Where each section was written; null when absent. */
export interface SectionLocs {
  config: Loc | null;
  kvCache: Loc | null;
  weights: Loc | null;
  params: Loc | null;
}

export interface Model {
  kind: 'model';
  file: string;
  name: string;
  nameLoc: Loc;
  /** In source order; duplicates are kept and reported by evaluateConfig. */
  config: ConfigEntry[];
  /** null when there is no kv_cache section (the defaults apply). */
  kvCache: KvCacheEntry[] | null;
  weights: WeightsDecl | null;
  /** Global tensors. */
  params: ParamDecl[];
  layer: LayerDecl | null;
  /** Model-level statements in order, the layer included where it appears. */
  statements: Statement[];
  /** The last model-level assignment to `logits`: the model's output. */
  logits: Assign;
  sections: SectionLocs;
  /** The `speculative { ... }` section; absent when the model has none. */
  speculative?: { entries: SpecEntry[]; loc: Loc };
  loc: Loc;
}

export type KvDtype = 'f32' | 'f16' | 'int8' | 'int4';
export const KV_DTYPES: readonly KvDtype[] = ['f32', 'f16', 'int8', 'int4'];

/** kv_cache settings after validation, with defaults filled in. */
export interface KvCacheSpec {
  layout: 'contiguous' | 'paged';
  /** Tokens per page; null unless paged. */
  page: number | null;
  dtype: KvDtype;
  /** Sliding-window length in tokens; null for full attention. */
  window: number | null;
}

export const DEFAULT_KV_CACHE: KvCacheSpec = { layout: 'contiguous', page: null, dtype: 'f32', window: null };
