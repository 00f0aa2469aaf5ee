// Mixture of experts: router matmul + score + top-k -> one moe_route node, and the
// expert body (computed densely, for every expert, by the unfused graph) -> grouped
// moe_experts nodes that compute only the rows of the chosen experts:
//
//   topk(softmax(h @ router))            -> moe_route(h, router)            [T, k, 2]
//   h @ e.w  (expert_matmul, [T, E, N])  -> moe_experts(h, w, r)            [T, k, N]
//   elementwise on [T, E, N]             -> the same op on [T, k, N]
//   silu(h @ e.gate) * (h @ e.up)        -> moe_experts(h, gate, up, r)     [T, k, F]  (SwiGLU pair)
//   x + moe(r, y @ e.down)               -> moe_experts(y, down, r, x)      [T, D]
//                                           (weighted combine and residual add in the last
//                                            kernel's epilogue; a silu(a) * b that is not a
//                                            SwiGLU pair goes into its prologue instead)
// A SwiGLU MoE layer is then 3 dispatches: route, gate+up, down+combine+residual.
//
// Row (t, j) of a [T, k, N] value is token t's j-th chosen expert, so the body keeps
// its meaning row by row. The pass fires only when the whole body fits (every node
// expert_matmul, unary or binary, used only inside the body, the last one an
// expert_matmul); anything else stays unfused, with its dense meaning (the CPU engine
// runs it; the WebGPU scheduler refuses it with a message).
import { rewrite, useCounts, type Graph, type GraphBuilder, type Node } from '../ir/graph.ts';
import type { MoeScore } from '../../program/kernels.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';
import { sameShape } from '../ir/shapes.ts';

interface Plan {
  readonly routing: Node;
  readonly body: ReadonlySet<Node>;
  /** silu(a) * b feeding the last matmul, folded into its prologue. */
  readonly siluMul: readonly [Node, Node] | null;
  /** silu(x @ e.gate) * (x @ e.up) over one shared x: one kernel computes both (the mul node). */
  readonly swiglu: { mul: Node; x: Node; gate: Node; up: Node } | null;
}

const isFn = (n: Node, op: 'unary' | 'binary', fn: string) => n.op === op && (n.arg as { fn: string }).fn === fn;

/** The body of `moe` node m, if every node of it can run per chosen slot. */
function planFor(m: Node, uses: Map<Node, number>): Plan | null {
  const [routing, y] = m.src;
  if (routing.op !== 'topk' || y.op !== 'expert_matmul' || uses.get(y) !== 1) return null;
  const body = new Set<Node>();
  const users = new Map<Node, number>();
  const visit = (n: Node): boolean => {
    if (body.has(n)) return true;
    if (n.op === 'const') return true;
    if (n.shape.length !== 3 || n.shape[1] !== y.shape[1]) return false;
    if (n.op !== 'expert_matmul' && n.op !== 'unary' && n.op !== 'binary') return false;
    body.add(n);
    const srcs = n.op === 'expert_matmul' ? (n.src[0].shape.length === 3 ? [n.src[0]] : []) : n.src;
    for (const s of srcs) {
      users.set(s, (users.get(s) ?? 0) + 1);
      if (!visit(s)) return false;
    }
    return true;
  };
  if (!visit(y)) return null;
  // A body value read outside the body would need its dense [T, E, N] form.
  for (const n of body) if (n !== y && users.get(n) !== uses.get(n)) return null;
  const x = y.src[0];
  let siluMul: [Node, Node] | null = null;
  if (body.has(x) && isFn(x, 'binary', 'mul') && uses.get(x) === 1) {
    const [a, b] = x.src;
    // Equal shapes only: a repeating operand (a [T, 1, 1] gate) is not an up projection.
    if (isFn(a, 'unary', 'silu') && uses.get(a) === 1 && sameShape(a.shape, b.shape)) siluMul = [a.src[0], b];
    else if (isFn(b, 'unary', 'silu') && uses.get(b) === 1 && sameShape(a.shape, b.shape)) siluMul = [b.src[0], a];
  }
  // Gate and up read the same input: one SwiGLU kernel reads both experts' matrices,
  // and the down projection takes its [T, k, F] rows (3 MoE dispatches instead of 4).
  let swiglu: Plan['swiglu'] = null;
  const shared = (n: Node) => n.op === 'expert_matmul' && n.src[0].shape.length === 2 && uses.get(n) === 1;
  if (siluMul && shared(siluMul[0]) && shared(siluMul[1]) && siluMul[0].src[0] === siluMul[1].src[0]) {
    swiglu = { mul: x, x: siluMul[0].src[0], gate: siluMul[0].src[1], up: siluMul[1].src[1] };
    siluMul = null;
  }
  return { routing, body, siluMul, swiglu };
}

/** The score function and router matmul under a topk, when they fuse into moe_route. */
function routeOf(t: Node): { score: MoeScore; x: Node; router: Node } | null {
  const s = t.src[0];
  const mm = (n: Node) => (n.op === 'matmul' && n.src[1].op === 'param' ? n : null);
  if (s.op === 'softmax' && mm(s.src[0])) return { score: 'softmax', x: s.src[0].src[0], router: s.src[0].src[1] };
  if (isFn(s, 'unary', 'sigmoid') && mm(s.src[0])) return { score: 'sigmoid', x: s.src[0].src[0], router: s.src[0].src[1] };
  if (mm(s)) return { score: 'none', x: s.src[0], router: s.src[1] };
  return null;
}

export const fuseMoe: Pass = {
  name: 'fuseMoe',
  fuses: 'moe',
  summary: 'router + top-k -> moe_route; expert bodies -> grouped moe_experts (chosen experts only, combine + residual fused)',
  run: (g: Graph) => {
    const uses = useCounts(g);
    const plans = new Map<Node, Plan>();
    const routings = new Set<Node>();
    const bodyOf = new Map<Node, Plan>();
    for (const n of g.nodes) {
      if (n.op !== 'moe') continue;
      const p = planFor(n, uses);
      if (!p || [...p.body].some((b) => bodyOf.has(b))) continue;
      plans.set(n, p);
      routings.add(p.routing);
      for (const b of p.body) bodyOf.set(b, p);
    }
    // A residual add folds in when the moe output has no other user.
    const residualOf = new Map<Node, Node>();
    for (const n of g.nodes) {
      if (!isFn(n, 'binary', 'add')) continue;
      const [a, b] = n.src;
      if (plans.has(b) && uses.get(b) === 1 && a.shape.length === 2 && a !== b) residualOf.set(n, b);
      else if (plans.has(a) && uses.get(a) === 1 && b.shape.length === 2) residualOf.set(n, a);
    }

    const combine = (m: Node, b: GraphBuilder, old: Map<Node, Node>, res: Node | null): Node => {
      const p = plans.get(m)!;
      const y = m.src[1];
      const r = old.get(p.routing)!;
      const w = old.get(y.src[1])!;
      const tail = res ? [r, res] : [r];
      if (p.siluMul) return b.node('moe_experts', { input: 'silu_mul', combine: true, residual: !!res }, [old.get(p.siluMul[0])!, old.get(p.siluMul[1])!, w, ...tail]);
      const x = y.src[0];
      return b.node('moe_experts', { input: x.shape.length === 3 ? 'slot' : 'shared', combine: true, residual: !!res }, [old.get(x)!, w, ...tail]);
    };

    return rewrite(g, (n, src, b, old) => {
      if (routings.has(n)) {
        const route = routeOf(n);
        if (!route) return undefined; // the topk itself stays; moe_experts read its routing as is
        const a = n.arg as OpArgs['topk'];
        return b.node('moe_route', { ...a, score: route.score }, [old.get(route.x)!, old.get(route.router)!]);
      }
      const p = bodyOf.get(n);
      if (p) {
        const r = old.get(p.routing)!;
        if (p.swiglu?.mul === n) {
          const { x, gate, up } = p.swiglu;
          return b.node('moe_experts', { input: 'swiglu', combine: false, residual: false }, [old.get(x)!, old.get(gate)!, old.get(up)!, r]);
        }
        if (n.op === 'expert_matmul') {
          // The last matmul is built at the moe node (with its combine); this per-slot
          // version of it, like a silu*mul folded into it, is left dead and dropped.
          const shared = n.src[0].shape.length === 2;
          return b.node('moe_experts', { input: shared ? 'shared' : 'slot', combine: false, residual: false }, [src[0], src[1], r]);
        }
        return b.node(n.op, n.arg, src);
      }
      if (plans.has(n)) return combine(n, b, old, null);
      const m = residualOf.get(n);
      if (m) return combine(m, b, old, old.get(n.src[0] === m ? n.src[1] : n.src[0])!);
      return undefined;
    });
  },
};
