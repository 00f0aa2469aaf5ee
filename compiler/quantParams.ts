// Which params stay quantised on the device. A param stored as q8_0 / q4_0 in the
// weight file keeps its blocks when every use of it is one that has a
// dequantising kernel: a matmul's weight (GEMV and tiled) or an embedding table
// (so a tied output, which is both, stays quantised too). Any other use (a norm
// weight, an elementwise operand) would need f32, so the param is dequantised at
// load instead: the decision is per param, never per use, because a param has
// one buffer. Blocks run along dim 0 (ggml's ne0 = K), so K must be a multiple
// of 32, which GGUF already requires of q-type tensors.
import type { Graph, Node } from './ir/graph.ts';
import type { OpArgs } from './ir/ops.ts';
import { isQuantType, QBLOCK, type QuantType } from './weightTypes.ts';

/** The operand index each op reads block weights at (none for other ops). */
function blockOperand(n: Node): number {
  switch (n.op) {
    case 'matmul': case 'embed': return 1;
    case 'fused_matmul': return (n.arg as OpArgs['fused_matmul']).prologue === 'none' ? 1 : 2;
    default: return -1;
  }
}

/** Param name -> its device type, for the params that stay quantised. */
export function quantParams(g: Graph, weightTypes: ReadonlyMap<string, string> | undefined): Map<string, QuantType> {
  const out = new Map<string, QuantType>();
  if (!weightTypes || weightTypes.size === 0) return out;
  const refused = new Set<string>();
  for (const n of g.nodes) {
    const at = blockOperand(n);
    n.src.forEach((s, i) => {
      if (s.op !== 'param') return;
      const name = (s.arg as OpArgs['param']).name;
      const type = weightTypes.get(name);
      if (!isQuantType(type)) return;
      const ok = i === at && s.shape.length === 2 && (s.shape[0] as number) % QBLOCK === 0;
      if (ok && !refused.has(name)) out.set(name, type);
      else { refused.add(name); out.delete(name); }
    });
  }
  return out;
}
