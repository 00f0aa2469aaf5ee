// matmul(x, W) + b, with b [N] repeated over the tokens (Qwen2's q/k/v biases), becomes a
// matmul whose epilogue adds b[n] to column n: the [T, N] product makes no round trip
// through memory and the add costs no dispatch. Only when the matmul's result has no other
// user, and before soft-capping and residual adds are fused (the epilogue applies bias,
// softcap, residual in that order, ir/ops.ts `fused_matmul`).
import { rewrite, useCounts, type GraphBuilder, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';
import { sameShape } from '../ir/shapes.ts';

/**
 * A matmul whose result has one user and whose epilogue has nothing at or after `stage` yet
 * (the epilogue runs bias, softcap, residual), so `stage` can still be appended.
 */
export function openMatmul(x: Node, uses: ReadonlyMap<Node, number>, stage: 'bias' | 'softcap'): boolean {
  if (uses.get(x) !== 1) return false;
  if (x.op === 'matmul') return true;
  if (x.op !== 'fused_matmul') return false;
  const a = x.arg as OpArgs['fused_matmul'];
  return !a.residual && a.softcap === undefined && (stage === 'softcap' || !a.bias);
}

/** `mm` (a matmul or fused_matmul, already rebuilt) with `extra` epilogue args; a bias source goes after w (ir/ops.ts). */
export function withEpilogue(b: GraphBuilder, mm: Node, extra: { bias?: true; softcap?: number }, bias?: Node): Node {
  const base = mm.op === 'matmul' ? { prologue: 'none' as const, eps: 0, residual: false } : (mm.arg as OpArgs['fused_matmul']);
  return b.node('fused_matmul', { ...base, ...extra }, bias ? [...mm.src, bias] : [...mm.src]) as Node;
}

export const fuseBias: Pass = {
  name: 'fuseBias',
  fuses: 'bias',
  summary: 'fold a bias add (b [N] over [T, N]) into the epilogue of the matmul it adds to',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'binary' || (n.arg as OpArgs['binary']).fn !== 'add') return undefined;
      for (const side of [0, 1]) {
        const mm = n.src[side], bias = n.src[1 - side];
        if (!openMatmul(mm, uses, 'bias') || mm.shape.length !== 2) continue;
        if (!sameShape(bias.shape, [mm.shape[1]]) || bias.dtype !== 'f32') continue;
        return withEpilogue(b, old.get(mm)!, { bias: true }, src[1 - side]);
      }
      return undefined;
    });
  },
};
