// silu(gate) * up -> matmul (the SwiGLU down projection) becomes one matmul whose
// prologue computes silu(gate) * up on the fly, so the [T, ffn] product is never
// stored. Only when the product has no other user, or it would be computed twice.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';

function siluMulOperands(n: Node): [Node, Node] | null {
  if (n.op !== 'binary' || (n.arg as OpArgs['binary']).fn !== 'mul') return null;
  const isSilu = (x: Node) => x.op === 'unary' && (x.arg as OpArgs['unary']).fn === 'silu';
  const [a, b] = n.src;
  if (isSilu(a) && b.shape.length === a.shape.length) return [a.src[0], b];
  if (isSilu(b) && a.shape.length === b.shape.length) return [b.src[0], a];
  return null;
}

export const fuseSiluMul: Pass = {
  name: 'fuseSiluMul',
  fuses: 'silu_mul',
  summary: 'fold silu(gate) * up into the prologue of the matmul that consumes it',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'matmul' || uses.get(n.src[0]) !== 1) return undefined;
      const pair = siluMulOperands(n.src[0]);
      if (!pair) return undefined;
      return b.node('fused_matmul', { prologue: 'silu_mul', eps: 0, residual: false }, [old.get(pair[0])!, old.get(pair[1])!, src[1]]) as Node;
    });
  },
};
