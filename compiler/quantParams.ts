// Which params stay compact on the device. A param stored as f16 / bf16 (as f16) or in
// blocks (q8_0, q4_0, q4_K, q5_K, q6_K: program/quant.ts) in the weight file stays
// that way when every use of it is one that has a
// dequantising kernel: a matmul's weight (GEMV and tiled), an embedding table
// (so a tied output, which is both, stays quantised too), or a 3-D expert weight
// `[K, N, experts]` of the MoE kernels (fused moe_experts and the unfused, dense
// expert_matmul, both rendered by moe_experts.hbs). Any other use (a norm weight,
// an elementwise operand, a router read by moe_route) would need f32, so the param
// is dequantised at load instead: the decision is per param, never per use,
// because a param has one buffer. Blocks run along dim 0 (ggml's ne0 = K), so K
// must be a multiple of the block length (32, 256; 4 for f16's vec4 reads), which
// GGUF already requires of block tensors; expert
// e is the contiguous slice e (its N rows of K weights, blocks in file order), so
// a 3-D param is repacked exactly like a 2-D one.
import type { Graph, Node } from './ir/graph.ts';
import type { OpArgs } from './ir/ops.ts';
import { blockElements, deviceWeightType, type CompactType } from '../program/quant.ts';

/** The operand indices at which an op reads block weights, and the weights' rank there. */
function blockOperands(n: Node): { at: readonly number[]; rank: number } {
  switch (n.op) {
    case 'matmul': case 'embed': return { at: [1], rank: 2 };
    case 'fused_matmul': return { at: [(n.arg as OpArgs['fused_matmul']).prologue === 'none' ? 1 : 2], rank: 2 };
    case 'expert_matmul': return { at: [1], rank: 3 };
    case 'moe_experts': {
      const input = (n.arg as OpArgs['moe_experts']).input;
      return { at: input === 'silu_mul' ? [2] : input === 'swiglu' ? [1, 2] : [1], rank: 3 };
    }
    default: return { at: [], rank: 0 };
  }
}

const paramName = (s: Node): string => (s.arg as OpArgs['param']).name;

/** Param name -> its device type, for the params that stay quantised. */
export function quantParams(g: Graph, weightTypes: ReadonlyMap<string, string> | undefined): Map<string, CompactType> {
  const out = new Map<string, CompactType>();
  if (!weightTypes || weightTypes.size === 0) return out;
  const refused = new Set<string>();
  const refuse = (name: string) => { refused.add(name); out.delete(name); };
  for (const n of g.nodes) {
    const { at, rank } = blockOperands(n);
    n.src.forEach((s, i) => {
      if (s.op !== 'param') return;
      const name = paramName(s);
      const type = deviceWeightType(weightTypes.get(name));
      if (!type) return;
      const ok = at.includes(i) && s.shape.length === rank && (s.shape[0] as number) % blockElements(type) === 0;
      if (ok && !refused.has(name)) out.set(name, type);
      else refuse(name);
    });
  }
  // A SwiGLU moe_experts kernel reads gate (w) and up (w2) with one weight type: both
  // stay in the same block type or both become f32. Refusing one may unsettle another
  // kernel sharing it, so repeat until nothing changes.
  const swiglu = g.nodes.filter((n) => n.op === 'moe_experts' && (n.arg as OpArgs['moe_experts']).input === 'swiglu');
  const typeOf = (s: Node) => (s.op === 'param' ? out.get(paramName(s)) : undefined);
  for (let changed = true; changed;) {
    changed = false;
    for (const n of swiglu) {
      if (typeOf(n.src[1]) === typeOf(n.src[2])) continue;
      for (const s of [n.src[1], n.src[2]]) if (s.op === 'param') refuse(paramName(s));
      changed = true;
    }
  }
  return out;
}
