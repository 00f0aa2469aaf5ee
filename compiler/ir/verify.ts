// Structural checks for a finished graph: topological order, arity, types that
// still follow the shape rules, and model facts that kernels rely on. Passes are
// verified after each run in the pipeline, so a broken rewrite fails loudly.
import type { Graph, Node } from './graph.ts';
import { arity } from './ops.ts';
import { inferType, sameShape, ShapeError } from './shapes.ts';

export class VerifyError extends Error {}

export function verify(g: Graph): void {
  const seen = new Set<Node>();
  const fail = (n: Node, msg: string): never => { throw new VerifyError(`%${n.id} ${n.op}: ${msg}`); };
  for (const n of g.nodes) {
    for (const s of n.src) if (!seen.has(s)) fail(n, `source %${s.id} is not defined before its use`);
    const [lo, hi] = arity(n.op, n.arg);
    if (n.src.length < lo || n.src.length > hi) fail(n, `has ${n.src.length} sources, expected ${lo}..${hi}`);
    if (n.op !== 'param') {
      try {
        const t = inferType(n.op, n.arg, n.src);
        if (!sameShape(t.shape, n.shape) || t.dtype !== n.dtype) fail(n, `type ${n.dtype}[${n.shape}] differs from rule ${t.dtype}[${t.shape}]`);
      } catch (e) {
        if (e instanceof ShapeError) fail(n, e.message);
        throw e;
      }
    }
    seen.add(n);
  }
  if (!seen.has(g.logits)) throw new VerifyError('logits node is not in the graph');
  const m = g.model;
  if (m.heads % m.kvHeads !== 0) throw new VerifyError(`heads (${m.heads}) must be a multiple of kv_heads (${m.kvHeads})`);
  const ids = new Set(g.nodes.map((n) => n.id));
  if (ids.size !== g.nodes.length) throw new VerifyError('duplicate node ids');
}
