// rope(rmsnorm(x, w)) over [T, H, D] (Qwen3's per-head q and k norms) becomes one rope whose
// kernel normalises each head's row on the way in: the normalised q/k never makes a round trip
// through memory and the layer saves a dispatch per norm. For K, fuseKvAppend (which runs
// after this pass) then folds the normalising rope into the KV append: norm -> rope -> cache
// in one kernel. Only when the norm has no other user and its weight is one row of D.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';
import { sameShape } from '../ir/shapes.ts';

export const fuseQkNorm: Pass = {
  name: 'fuseQkNorm',
  fuses: 'qk_norm',
  summary: 'fold a per-head rmsnorm of q or k into the RoPE that reads it (and so into the KV append)',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'rope' || (n.arg as OpArgs['rope']).norm !== undefined) return undefined;
      const norm = n.src[0];
      if (norm.op !== 'rmsnorm' || uses.get(norm) !== 1 || !sameShape(norm.src[1].shape, [n.shape[2]])) return undefined;
      const arg = { ...(n.arg as OpArgs['rope']), norm: (norm.arg as OpArgs['rmsnorm']).eps };
      return b.node('rope', arg, [old.get(norm.src[0])!, src[1], old.get(norm.src[1])!]) as Node;
    });
  },
};
