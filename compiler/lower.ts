// AST -> graph IR. Evaluates the config, checks the model-level facts the runtime
// relies on, binds params (layer params as blk.N.name, GGUF's convention), and
// unrolls the layer `layers` times. Every problem becomes a diagnostic at the
// spec text that caused it; lowering never throws on bad input.
import type { Assign, LayerDecl, Loc, Model, ParamDecl } from '../dsl/ast.ts';
import { evaluateConfig, resolveKvCache } from '../dsl/config.ts';
import { diagnosticAt, type Diagnostic } from '../dsl/diagnostics.ts';
import type { Scope, Value } from './builtins.ts';
import { GraphBuilder, type Graph, type Node } from './ir/graph.ts';
import type { ModelInfo } from '../program/model.ts';
import { sameShape, ShapeError, showShape } from './ir/shapes.ts';
import { LowerError, lowerDim, lowerExpr, tensor } from './lowerExpr.ts';
import { checkConfigLimits, checkParamLimits, LIMITS, showLimit } from './limits.ts';
import { configDefault, REQUIRED_CONFIG } from './configKeys.ts';

/** Inside a layer body, the number of the layer being unrolled (0, 1, ...): per-layer settings such as windows. */
export const LAYER_INDEX = 'layer_index';

const REQUIRED = REQUIRED_CONFIG;

export interface Lowered { graph: Graph | null; diagnostics: Diagnostic[] }

export interface LowerOptions {
  /**
   * Unroll only the first N layers (1 <= N <= the spec's `layers`): a self-draft
   * that shares the target's weights (blk.0..N-1, output_norm, output).
   */
  readonly layers?: number;
}

export function lower(ast: Model, options: LowerOptions = {}): Lowered {
  const cfg = evaluateConfig(ast);
  const kvr = resolveKvCache(ast, cfg.values);
  const diagnostics = [...cfg.diagnostics, ...kvr.diagnostics];
  if (diagnostics.length) return { graph: null, diagnostics };
  const err = (loc: Loc, msg: string) => diagnostics.push(diagnosticAt(ast.file, loc, msg));
  const c = cfg.values;
  for (const k of REQUIRED) if (!c.has(k)) err(ast.nameLoc, `missing config constant '${k}' (a model needs ${REQUIRED.join(', ')})`);
  if (diagnostics.length) return { graph: null, diagnostics };
  const entryLoc = (name: string) => ast.config.find((e) => e.name === name)?.loc ?? ast.nameLoc;
  for (const k of [...REQUIRED, 'max_context']) {
    const v = c.get(k);
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) err(entryLoc(k), `config '${k}' must be a positive integer, got ${v}`);
  }
  // Sizes against the language's limits, before anything is unrolled or allocated.
  const kvEntryLoc = (key: string) => ast.kvCache?.find((e) => e.key === key)?.loc ?? ast.sections.kvCache ?? ast.nameLoc;
  checkConfigLimits(c, kvr.kv, kvEntryLoc, entryLoc, err);
  if (diagnostics.length === 0) checkParamLimits(ast, c, entryLoc, err);
  const eos = c.get('eos');
  if (eos !== undefined && !(Number.isInteger(eos) && eos >= 0 && eos < c.get('vocab')!)) err(entryLoc('eos'), `config 'eos' must be a token id below vocab (${c.get('vocab')}), got ${eos}`);
  if (options.layers !== undefined) {
    const declared = c.get('layers')!;
    if (!(Number.isInteger(options.layers) && options.layers >= 1 && options.layers <= declared)) err(entryLoc('layers'), `a layer-skipping draft needs 1 to ${declared} layers (the spec's 'layers'), got ${options.layers}`);
    else c.set('layers', options.layers);
  }
  if (c.get('heads')! % c.get('kv_heads')! !== 0) err(entryLoc('kv_heads'), `heads (${c.get('heads')}) must be a multiple of kv_heads (${c.get('kv_heads')})`);
  if (c.get('head_dim')! % 2 !== 0) err(entryLoc('head_dim'), `head_dim must be even for rope, got ${c.get('head_dim')}`);
  const kv = kvr.kv;
  const kvLoc = ast.sections.kvCache ?? ast.nameLoc;
  // Packed formats store a row in whole 32-bit words; two f16 or eight int4 values share one.
  if ((kv.dtype === 'int4' || kv.dtype === 'f16') && c.get('head_dim')! % 2 !== 0) err(kvLoc, `kv_cache dtype ${kv.dtype} needs an even head_dim, got ${c.get('head_dim')}`);
  const maxContext = c.get('max_context') ?? configDefault('max_context');
  if (kv.layout === 'paged' && kv.page !== null && kv.page > maxContext) err(kvLoc, `kv_cache page size ${kv.page} is larger than max_context (${maxContext})`);
  const weights = bindWeights(ast, err);
  if (!ast.layer) err(ast.nameLoc, "a model needs a 'layer' definition");
  if (diagnostics.length || !weights) return { graph: null, diagnostics };

  const model: ModelInfo = {
    name: ast.name, vocab: c.get('vocab')!, dim: c.get('dim')!, layers: c.get('layers')!, heads: c.get('heads')!,
    kvHeads: c.get('kv_heads')!, headDim: c.get('head_dim')!, maxContext, eos: eos ?? null,
    kv: { layout: kv.layout === 'paged' ? { kind: 'paged', pageSize: kv.page! } : { kind: 'contiguous' }, dtype: kv.dtype, window: kv.window },
    weights, constants: Object.fromEntries(c),
  };
  try {
    return { graph: lowerModel(ast, model, c), diagnostics };
  } catch (e) {
    if (e instanceof LowerError) return { graph: null, diagnostics: [diagnosticAt(ast.file, e.loc, e.message)] };
    // A shape rule broken outside any located builder call: still a diagnostic, at the model.
    if (e instanceof ShapeError) return { graph: null, diagnostics: [diagnosticAt(ast.file, ast.nameLoc, e.message)] };
    throw e;
  }
}

function bindWeights(ast: Model, err: (loc: Loc, msg: string) => void): ModelInfo['weights'] | null {
  const w = ast.weights;
  if (!w) return { binding: 'random', seed: 0 };
  if (w.binding === 'gguf') {
    if (w.args.length) err(w.args[0].loc, "'weights gguf' takes no arguments");
    return { binding: 'gguf' };
  }
  if (w.binding !== 'random') { err(w.bindingLoc, `unknown weights binding '${w.binding}'; known: random(seed = N), gguf`); return null; }
  let seed = 0;
  for (const a of w.args) {
    if (a.name !== 'seed') { err(a.loc, `random weights take only 'seed', got '${a.name}'`); return null; }
    if (a.value.kind !== 'num' || !Number.isInteger(a.value.value) || a.value.value < 0) { err(a.value.loc, 'seed must be a non-negative integer'); return null; }
    seed = a.value.value;
  }
  return { binding: 'random', seed };
}

class Env implements Scope {
  private readonly vars = new Map<string, Value>();
  constructor(readonly b: GraphBuilder, readonly config: ReadonlyMap<string, number>, readonly window: number | null,
    readonly positions: Node, readonly layer: number | null, private readonly parent: Env | null) {}
  lookup(name: string): Value | undefined {
    return this.vars.get(name) ?? this.parent?.lookup(name) ?? (this.config.has(name) ? { kind: 'num', value: this.config.get(name)! } : undefined);
  }
  names(): Iterable<string> { return [...this.vars.keys(), ...(this.parent ? this.parent.names() : this.config.keys())]; }
  set(name: string, v: Value): void { this.vars.set(name, v); }
  child(layer: number): Env { return new Env(this.b, this.config, this.window, this.positions, layer, this); }
}

function declareParams(env: Env, decls: readonly ParamDecl[], prefix: string, seen: Map<string, Loc>): void {
  for (const p of decls) {
    if (seen.has(p.name)) throw new LowerError(`duplicate definition of '${p.name}' (first at ${seen.get(p.name)!.line}:${seen.get(p.name)!.col})`, p.nameLoc);
    seen.set(p.name, p.nameLoc);
    const shape = p.shape.map((d) => lowerDim(d, env));
    if (shape.some((d) => d === 'T')) throw new LowerError(`parameter '${p.name}' cannot depend on T`, p.shapeLoc);
    // 3-D params are merged expert weights [in, out, experts] (GGUF's *_exps).
    if (shape.length < 1 || shape.length > 3) throw new LowerError(`parameter '${p.name}' must be 1-D, 2-D or (expert weights) 3-D, got ${showShape(shape)}`, p.shapeLoc);
    env.set(p.name, { kind: 'tensor', node: env.b.param(prefix + p.name, shape as number[]) });
  }
}

function assign(env: Env, s: Assign): void {
  if (s.target === 'tokens' || s.target === 'T' || s.target === LAYER_INDEX) throw new LowerError(`'${s.target}' is built in and cannot be assigned`, s.targetLoc);
  env.set(s.target, lowerExpr(s.value, env));
}

function checkShape(v: Value, want: readonly (number | 'T')[], loc: Loc, what: string): Node {
  const n = tensor(v, loc, what);
  if (!sameShape(n.shape, want)) throw new LowerError(`${what} has shape ${showShape(n.shape)}, but ${showShape(want)} was declared`, loc);
  return n;
}

function applyLayer(env: Env, layer: LayerDecl, model: ModelInfo, globalNames: Map<string, Loc>, layersLoc: Loc): void {
  if (layer.inputs.length !== 1) throw new LowerError(`a layer takes exactly one input for now, got ${layer.inputs.length}`, layer.nameLoc);
  const input = layer.inputs[0];
  const inShape = input.shape.map((d) => lowerDim(d, env));
  const outShape = layer.output.map((d) => lowerDim(d, env));
  const before = env.b.size;
  for (let l = 0; l < model.layers; l++) {
    const x = env.lookup(input.name);
    if (!x) throw new LowerError(`layer input '${input.name}' is not defined before the layer`, input.nameLoc);
    const inner = env.child(l);
    declareParams(inner, layer.params, `blk.${l}.`, new Map(globalNames));
    inner.set(input.name, { kind: 'tensor', node: checkShape(x, inShape, input.loc, `layer input '${input.name}'`) });
    inner.set(LAYER_INDEX, { kind: 'num', value: l });
    for (const s of layer.body) assign(inner, s);
    const out = checkShape(lowerExpr(layer.result, inner), outShape, layer.result.loc, 'the layer result');
    env.set(input.name, { kind: 'tensor', node: out });
    // The first layer tells what unrolling all of them will cost: answer now, at the
    // layers line, rather than after building most of an oversized graph.
    if (l === 0) {
      const perLayer = env.b.size - before;
      if (before + perLayer * model.layers > LIMITS.nodes) {
        throw new LowerError(`the layer body lowers to ${perLayer} graph nodes; ${model.layers} layers of it exceed the limit of ${showLimit(LIMITS.nodes)} nodes (compile time grows with them)`, layersLoc);
      }
    }
  }
}

function lowerModel(ast: Model, model: ModelInfo, config: ReadonlyMap<string, number>): Graph {
  const b = new GraphBuilder();
  const root = new Env(b, config, model.kv.window, b.positions(), null, null);
  root.set('tokens', { kind: 'tensor', node: b.tokens() });
  const globals = new Map<string, Loc>();
  declareParams(root, ast.params, '', globals);
  for (const s of ast.statements) {
    if (s.kind === 'layer') applyLayer(root, s, model, globals, ast.config.find((e) => e.name === 'layers')?.loc ?? s.nameLoc);
    else assign(root, s);
  }
  const logits = checkShape(root.lookup('logits') ?? { kind: 'num', value: 0 }, ['T', model.vocab], ast.logits.value.loc, 'logits');
  const graph = b.finish(model, logits);
  const embed = graph.nodes.find((n) => n.op === 'embed');
  if (embed && embed.shape[1] !== model.dim) throw new LowerError(`the embedding width ${embed.shape[1]} differs from dim (${model.dim})`, ast.logits.loc);
  return graph;
}
