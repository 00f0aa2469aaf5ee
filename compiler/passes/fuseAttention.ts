// attn_scores -> softmax -> attn_values over one layer's cache becomes one `attention`
// (PagedAttention): the page-table gather, dequantisation, scale, masks, an online softmax
// and P.V in one kernel, so the [T, heads, context] scores and probabilities are never
// stored and the keys are read once per query-head group instead of once per query head.
// Only when the scores and probabilities have no other user and both ends agree on the
// layer, the masks and the positions.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';

export const fuseAttention: Pass = {
  name: 'fuseAttention',
  fuses: 'attention',
  summary: 'fuse attention scores, softmax and P.V over the paged cache into one PagedAttention kernel',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'attn_values') return undefined;
      const p = n.src[0];
      if (p.op !== 'softmax' || uses.get(p) !== 1) return undefined;
      const scores = p.src[0];
      if (scores.op !== 'attn_scores' || uses.get(scores) !== 1) return undefined;
      const a = scores.arg as OpArgs['attn_scores'], v = n.arg as OpArgs['attn_values'];
      if (a.layer !== v.layer || a.causal !== v.causal || a.window !== v.window) return undefined;
      if (scores.src[1] !== n.src[1] || scores.src[2] !== n.src[2]) return undefined;
      const arg: OpArgs['attention'] = { layer: a.layer, causal: a.causal, window: a.window, scale: a.scale, ...(a.softcap !== undefined ? { softcap: a.softcap } : {}) };
      return b.node('attention', arg, [old.get(scores.src[0])!, src[1], src[2]]) as Node;
    });
  },
};
