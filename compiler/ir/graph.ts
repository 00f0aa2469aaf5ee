// Immutable, hash-consed graph nodes. A node is created only through a builder,
// which checks its type and returns the existing node when an identical one
// (same op, argument and sources) was built before: common subexpressions merge
// for free, and passes compare nodes by identity.
import type { DType, Op, OpArgs, Shape } from './ops.ts';
import { arity } from './ops.ts';
import { inferType, ShapeError } from './shapes.ts';
import type { ModelInfo, ParamInfo } from '../../program/model.ts';
import { activationTooLarge, LIMITS } from '../limits.ts';

export interface Node<O extends Op = Op> {
  readonly id: number;
  readonly op: O;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly src: readonly Node[];
  readonly arg: Readonly<OpArgs[O]>;
}

export interface Graph {
  readonly model: ModelInfo;
  /** Every node in topological order (sources before users). */
  readonly nodes: readonly Node[];
  readonly params: readonly ParamInfo[];
  readonly logits: Node;
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly byKey = new Map<string, Node>();
  private readonly paramShapes = new Map<string, readonly number[]>();

  node<O extends Op>(op: O, arg: OpArgs[O], src: readonly Node[] = [], typed?: { shape: Shape; dtype: DType }): Node<O> {
    const [lo, hi] = arity(op, arg);
    if (src.length < lo || src.length > hi) throw new ShapeError(`${op} takes ${lo === hi ? lo : `${lo}-${hi}`} operands, got ${src.length}`);
    const key = `${op}|${JSON.stringify(arg)}|${src.map((s) => s.id).join(',')}`;
    const found = this.byKey.get(key);
    if (found) return found as Node<O>;
    if (this.nodes.length >= LIMITS.nodes) throw new ShapeError(`the graph has more than ${LIMITS.nodes} nodes, the limit (compile time grows with them)`);
    const t = typed ?? inferType(op, arg, src);
    const tooLarge = typed ? null : activationTooLarge(t.shape);
    if (tooLarge) throw new ShapeError(tooLarge);
    const n: Node<O> = Object.freeze({ id: this.nodes.length, op, dtype: t.dtype, shape: Object.freeze([...t.shape]), src: Object.freeze([...src]), arg: Object.freeze({ ...arg }) });
    this.nodes.push(n);
    this.byKey.set(key, n);
    return n;
  }

  param(name: string, shape: readonly number[]): Node<'param'> {
    const prev = this.paramShapes.get(name);
    if (prev && prev.join() !== shape.join()) throw new ShapeError(`parameter ${name} declared with two shapes`);
    this.paramShapes.set(name, shape);
    return this.node('param', { name }, [], { shape, dtype: 'f32' });
  }

  /** Nodes built so far (the lowering predicts the unrolled size from the first layer). */
  get size(): number { return this.nodes.length; }

  tokens(): Node<'tokens'> { return this.node('tokens', {}); }
  positions(): Node<'positions'> { return this.node('positions', {}); }
  constant(value: number): Node<'const'> { return this.node('const', { value }); }

  /** Keeps only the nodes the logits depend on, in topological order. */
  finish(model: ModelInfo, logits: Node): Graph {
    // An explicit stack: a 500-layer model is thousands of nodes deep.
    const live = new Set<Node>([logits]);
    const stack: Node[] = [logits];
    while (stack.length) {
      for (const s of stack.pop()!.src) {
        if (!live.has(s)) { live.add(s); stack.push(s); }
      }
    }
    const nodes = this.nodes.filter((n) => live.has(n));
    const params = nodes.filter((n): n is Node<'param'> => n.op === 'param')
      .map((n) => ({ name: n.arg.name, shape: n.shape as number[] }));
    return Object.freeze({ model, nodes: Object.freeze(nodes), params: Object.freeze(params), logits });
  }
}

/** How many nodes use each node as a source (the logits count as one use). */
export function useCounts(g: Graph): Map<Node, number> {
  const uses = new Map<Node, number>();
  for (const n of g.nodes) for (const s of n.src) uses.set(s, (uses.get(s) ?? 0) + 1);
  uses.set(g.logits, (uses.get(g.logits) ?? 0) + 1);
  return uses;
}

/**
 * Rebuilds a graph bottom-up. `rule` sees each old node with its sources already
 * rebuilt and returns a replacement (or undefined to copy the node as it is).
 * This is the one way passes transform graphs, so every pass stays a pure function.
 */
export function rewrite(
  g: Graph,
  rule: (n: Node, src: readonly Node[], b: GraphBuilder, old: Map<Node, Node>) => Node | undefined,
): Graph {
  const b = new GraphBuilder();
  const map = new Map<Node, Node>();
  for (const n of g.nodes) {
    const src = n.src.map((s) => map.get(s)!);
    let out = rule(n, src, b, map);
    if (!out) out = n.op === 'param' ? b.param((n.arg as OpArgs['param']).name, n.shape as number[]) : b.node(n.op, n.arg, src, { shape: n.shape, dtype: n.dtype });
    map.set(n, out);
  }
  return b.finish(g.model, map.get(g.logits)!);
}
