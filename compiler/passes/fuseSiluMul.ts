// silu(gate) * up -> matmul (the SwiGLU down projection) becomes one matmul whose
// prologue computes silu(gate) * up on the fly, so the [T, ffn] product is never
// stored. Only when the product has no other user, or it would be computed twice.
// gatedPrologue builds the same fusion for another gate function (fuseGeluMul.ts).
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';
import { sameShape } from '../ir/shapes.ts';

function gatedOperands(n: Node, fn: 'silu' | 'gelu'): [Node, Node] | null {
  if (n.op !== 'binary' || (n.arg as OpArgs['binary']).fn !== 'mul') return null;
  const isGate = (x: Node) => x.op === 'unary' && (x.arg as OpArgs['unary']).fn === fn;
  const [a, b] = n.src;
  // Equal shapes only: a repeating operand (a bias, a [T, 1] gate) is not an up projection.
  if (isGate(a) && sameShape(a.shape, b.shape)) return [a.src[0], b];
  if (isGate(b) && sameShape(a.shape, b.shape)) return [b.src[0], a];
  return null;
}

/** fn(gate) * up -> matmul becomes a matmul with the `${fn}_mul` prologue. */
export function gatedPrologue(fn: 'silu' | 'gelu', name: string, summary: string): Pass {
  const prologue = fn === 'silu' ? 'silu_mul' : 'gelu_mul';
  return {
    name, fuses: prologue, summary,
    run: (g) => {
      const uses = useCounts(g);
      return rewrite(g, (n, src, b, old) => {
        if (n.op !== 'matmul' || uses.get(n.src[0]) !== 1) return undefined;
        const pair = gatedOperands(n.src[0], fn);
        if (!pair) return undefined;
        return b.node('fused_matmul', { prologue, eps: 0, residual: false }, [old.get(pair[0])!, old.get(pair[1])!, src[1]]) as Node;
      });
    },
  };
}

export const fuseSiluMul: Pass = gatedPrologue('silu', 'fuseSiluMul', 'fold silu(gate) * up into the prologue of the matmul that consumes it');
