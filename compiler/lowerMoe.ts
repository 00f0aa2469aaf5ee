// Lowering of the mixture-of-experts constructs:
//
//   r = topk(softmax(h @ router), k = top_k)            # Mixtral / llama.cpp: renormalised
//   r = topk(softmax(h @ router), k = top_k, renorm = false, scale = 2.5)
//   r = softmax(topk(h @ router, k = top_k))            # softmax over the chosen logits only
//   r = topk(sigmoid(h @ router), k = top_k)            # any score the DSL can write
//   y = moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }
//
// `e.NAME` is expert e's slice of the layer param `NAME_exps` (or of `NAME` itself), a
// merged [K, N, experts] tensor as GGUF stores it (blk.N.ffn_gate_exps). The body is an
// ordinary expression; `@` with an expert weight lowers to expert_matmul, whose dense
// meaning computes every expert ([T, experts, N]), so the unfused graph is the plain
// definition and fuseMoe is what makes it sparse.
import { LIMITS } from './limits.ts';
import type { CallExpr, Loc } from '../dsl/ast.ts';
import type { Node } from './ir/graph.ts';
import type { MoeGating, OpArgs } from './ir/ops.ts';
import { showShape } from './ir/shapes.ts';
import type { Scope, Value } from './builtins.ts';
import { at, describe, LowerError, lowerExpr, suggest, tensor } from './lowerExpr.ts';

/** What `e` is bound to inside an expert body. */
export interface ExpertValue { kind: 'expert'; name: string; experts: number; member(name: string, loc: Loc): Node }

interface Arg { value: Value; loc: Loc }
interface CallCtx { scope: Scope; call: CallExpr; args: Arg[]; named: Map<string, Arg> }

/** A named true/false argument (the words true and false read as flags). */
export function bool(a: Arg | undefined, fallback: boolean): boolean {
  if (!a) return fallback;
  if (a.value.kind === 'flag' && (a.value.name === 'true' || a.value.name === 'false')) return a.value.name === 'true';
  throw new LowerError(`expected true or false, got ${describe(a.value)}`, a.loc);
}

/** topk(scores, k = top_k, renorm = true, scale = 1): a routing value. */
export function lowerTopk(c: CallCtx): Value {
  const scores = tensor(c.args[0].value, c.args[0].loc, "topk's scores");
  const kArg = c.named.get('k') ?? c.args[1];
  if (c.named.has('k') && c.args[1]) throw new LowerError('k given twice', c.named.get('k')!.loc);
  let k = c.scope.config.get('top_k');
  if (kArg) {
    if (kArg.value.kind !== 'num') throw new LowerError(`k must be a number, got ${describe(kArg.value)}`, kArg.loc);
    k = kArg.value.value;
  }
  if (k === undefined) throw new LowerError("topk needs k: write k = N or define the config constant 'top_k'", c.call.loc);
  const experts = scores.shape[1];
  if (scores.shape.length !== 2) throw new LowerError(`topk takes router scores [T, experts], got ${showShape(scores.shape)}`, c.args[0].loc);
  if (!Number.isInteger(k) || k < 1 || (typeof experts === 'number' && k > experts)) throw new LowerError(`k must be an integer in 1..${experts} (the experts), got ${k}`, kArg?.loc ?? c.call.loc);
  if (typeof experts === 'number' && experts > LIMITS.experts) throw new LowerError(`topk chooses among ${experts} experts, over the limit of ${LIMITS.experts}`, c.args[0].loc);
  if (k > LIMITS.topK) throw new LowerError(`k is ${k}, over the limit of ${LIMITS.topK} experts per token`, kArg?.loc ?? c.call.loc);
  const s = c.named.get('scale');
  if (s && (s.value.kind !== 'num' || !Number.isFinite(s.value.value))) throw new LowerError(`scale must be a number, got ${describe(s.value)}`, s.loc);
  const arg: MoeGating = { k, softmax: false, renorm: bool(c.named.get('renorm'), true), scale: s?.value.kind === 'num' ? s.value.value : 1 };
  return { kind: 'routing', node: at(c.call.loc, () => c.scope.b.node('topk', arg, [scores])) };
}

/** softmax(x) over the last dim; softmax(routing) re-weights the chosen experts by a softmax of their scores. */
export function lowerSoftmax(c: CallCtx): Value {
  const v = c.args[0].value;
  if (v.kind === 'routing') {
    const t = v.node as Node<'topk'>;
    const arg: OpArgs['topk'] = { ...t.arg, softmax: true, renorm: false };
    return { kind: 'routing', node: at(c.call.loc, () => c.scope.b.node('topk', arg, t.src)) };
  }
  return { kind: 'tensor', node: at(c.call.loc, () => c.scope.b.node('softmax', {}, [tensor(v, c.args[0].loc, "softmax's argument")])) };
}

/** moe(h, r, experts) { e => body }: the routed sum of the experts' bodies. */
export function lowerMoe(c: CallCtx): Value {
  const { call, scope } = c;
  if (!call.block) throw new LowerError('moe needs an expert body: moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }', call.loc);
  tensor(c.args[0].value, c.args[0].loc, "moe's input");
  const r = c.args[1];
  if (r.value.kind !== 'routing') throw new LowerError(`moe's second argument must be a routing from topk(...), got ${describe(r.value)}`, r.loc);
  const routing = r.value.node;
  const ex = c.args[2];
  if (ex.value.kind !== 'num' || !Number.isInteger(ex.value.value) || ex.value.value < 1) throw new LowerError(`moe's third argument is the number of experts, got ${describe(ex.value)}`, ex.loc);
  const E = ex.value.value;
  if (E > LIMITS.experts) throw new LowerError(`moe is given ${E} experts, over the limit of ${LIMITS.experts}`, ex.loc);
  if (routing.src[0].shape[1] !== E) throw new LowerError(`the routing chooses among ${routing.src[0].shape[1]} experts, but moe was given ${E}`, ex.loc);
  const block = call.block;
  const expert = {
    kind: 'expert', name: block.param, experts: E,
    member(name: string, loc: Loc): Node {
      const found = scope.lookup(`${name}_exps`) ?? scope.lookup(name);
      if (!found) throw new LowerError(`expert '${block.param}' has no weight '${name}': declare ${name}_exps: [in, out, experts] in the layer params`, loc);
      const w = tensor(found, loc, `expert weight '${name}'`);
      if (w.op !== 'param' || w.shape.length !== 3 || w.shape[2] !== E) throw new LowerError(`expert weight '${name}' must be a param [in, out, ${E}], got ${showShape(w.shape)}`, loc);
      return w;
    },
  } satisfies ExpertValue;
  const inner: Scope = {
    b: scope.b, layer: scope.layer, config: scope.config, window: scope.window, positions: scope.positions,
    lookup: (n) => (n === block.param ? expert : scope.lookup(n)),
    names: () => [block.param, ...scope.names()],
  };
  const y = tensor(lowerExpr(block.body, inner), block.body.loc, 'the expert body');
  if (y.shape.length !== 3 || y.shape[1] !== E) throw new LowerError(`the expert body must compute one row per expert from its weights (${block.param}.NAME); got ${showShape(y.shape)}`, block.body.loc);
  return { kind: 'tensor', node: at(call.loc, () => scope.b.node('moe', {}, [routing, y])) };
}

/** `object.name`: only an expert's weight has members. */
export function lowerMember(object: Value, name: string, loc: Loc, known: Iterable<string>): Value {
  if (object.kind !== 'expert') throw new LowerError(`'.${name}' needs an expert (the parameter of a moe body), got ${describe(object)}`, loc);
  try {
    return { kind: 'tensor', node: object.member(name, loc) };
  } catch (e) {
    if (e instanceof LowerError) throw new LowerError(e.message + suggest(`${name}_exps`, known), e.loc);
    throw e;
  }
}
