// rope(k) -> kv_store becomes one KvAppend: the K rows are rotated in registers on
// their way into the cache pages (and quantised there when the cache is int8/int4),
// so the rotated K never makes a round trip through memory and the layer saves a
// dispatch. A rope that normalises its rows first (fuseQkNorm.ts) brings its norm along.
// Only when the rope reads the same positions the store writes at, and
// nothing else reads the rotated K.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';

export const fuseKvAppend: Pass = {
  name: 'fuseKvAppend',
  fuses: 'kv_append',
  summary: 'fold the RoPE of K into the KV append (scatter into pages + quantisation)',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, src, b, old) => {
      if (n.op !== 'kv_store' || (n.arg as OpArgs['kv_store']).rope !== null) return undefined;
      const k = n.src[0];
      if (k.op !== 'rope' || uses.get(k) !== 1 || k.src[1] !== n.src[2]) return undefined;
      const { theta, neox, norm } = k.arg as OpArgs['rope'];
      const layer = (n.arg as OpArgs['kv_store']).layer;
      const arg = { layer, rope: theta, ...(neox ? { neox } : {}), ...(norm !== undefined ? { norm } : {}) };
      return b.node('kv_store', arg, [old.get(k.src[0])!, src[1], src[2], ...(norm !== undefined ? [old.get(k.src[2])!] : [])]) as Node;
    });
  },
};
