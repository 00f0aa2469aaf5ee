// x + matmul(...) becomes a matmul whose epilogue adds x, saving a dispatch and a
// round trip of the [T, N] result through memory. Only when the matmul's result
// has no other user.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';

export const fuseResidual: Pass = {
  name: 'fuseResidual',
  fuses: 'residual',
  summary: 'fold a residual add into the epilogue of the matmul it adds to',
  run: (g) => {
    const uses = useCounts(g);
    const fusable = (x: Node) => (x.op === 'matmul' || (x.op === 'fused_matmul' && !(x.arg as OpArgs['fused_matmul']).residual)) && uses.get(x) === 1;
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'binary' || (n.arg as OpArgs['binary']).fn !== 'add') return undefined;
      const side = fusable(n.src[1]) ? 1 : fusable(n.src[0]) ? 0 : -1;
      if (side < 0) return undefined;
      const mm = old.get(n.src[side])!;
      const res = src[1 - side];
      if (res.shape.length !== mm.shape.length || res.shape.some((d, i) => d !== mm.shape[i])) return undefined;
      if (mm.op === 'matmul') return b.node('fused_matmul', { prologue: 'none', eps: 0, residual: true }, [mm.src[0], mm.src[1], res]) as Node;
      const a = mm.arg as OpArgs['fused_matmul'];
      return b.node('fused_matmul', { ...a, residual: true }, [...mm.src, res]) as Node;
    });
  },
};
