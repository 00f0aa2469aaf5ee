// Attention over the paged KV cache: the meaning of the unfused ops the DSL lowers to
// (attn_scores -> softmax -> attn_values, each a plain op with its own kernel) and of the
// fused `attention` that fuseAttention makes of them, in float64.
//
// Visibility: token t of sequence b (at position pos[t]) sees its sequence's keys
// lo..hi with hi = pos[t] (causal) or the sequence's last stored position (non-causal),
// and lo = pos[t] - window + 1 when windowed, else 0. Query head h reads KV head
// floor(h / (H / KH)) (GQA; MQA is KH = 1).
import type { GraphBuilder, Node } from './graph.ts';
import type { CpuKvCache, Values } from './interpret.ts';
import type { KvTables } from '../../program/kv.ts';
import type { OpArgs } from './ops.ts';

interface Mask { readonly causal: boolean; readonly window: number | null }

/** The visible key range [lo, hi] of token t, and the slot of each of its sequence's positions. */
function visible(m: Mask, tb: KvTables, pos: Int32Array, t: number, P: number): { lo: number; hi: number; slot: (s: number) => number } {
  const b = tb.seqOf[t];
  const npages = tb.indptr[b + 1] - tb.indptr[b];
  const hi = m.causal ? pos[t] : (npages - 1) * P + tb.lastLen[b] - 1;
  const lo = m.window === null ? 0 : Math.max(0, pos[t] - m.window + 1);
  return { lo, hi, slot: (s) => tb.pages[tb.indptr[b] + Math.floor(s / P)] * P + (s % P) };
}

/** Builds attention(q, cache) as the DSL means it: the three unfused ops (fuseAttention fuses them). */
export function attentionOverCache(b: GraphBuilder, q: Node, cache: Node, positions: Node, a: OpArgs['attention'], context: number): Node {
  const headDim = q.shape[2] as number;
  const scores = b.node('attn_scores', { ...a, context }, [q, cache, positions]);
  const p = b.node('softmax', {}, [scores]);
  return b.node('attn_values', { layer: a.layer, causal: a.causal, window: a.window, headDim }, [p, cache, positions]);
}

/** Gemma 2's attention-logit soft-capping of a scaled score (identity without a cap). */
export const softcapped = (s: number, cap: number | undefined): number => (cap === undefined ? s : cap * Math.tanh(s / cap));

/** q.k^T * scale over each token's visible keys (soft-capped when asked); -inf at every other of the `context` columns. */
export function attentionScores(kv: CpuKvCache, a: OpArgs['attn_scores'], q: Values, pos: Int32Array, H: number, tb: KvTables): Float64Array {
  const { kvHeads: KH, headDim: D, pageSize: P } = kv.storage;
  const S = a.context, group = H / KH, kc = kv.k[a.layer];
  const out = new Float64Array(pos.length * H * S).fill(-Infinity);
  for (let t = 0; t < pos.length; t++) {
    const { lo, hi, slot } = visible(a, tb, pos, t, P);
    if (hi >= S) throw new Error(`position ${hi} is outside the attention context of ${S}`);
    for (let h = 0; h < H; h++) {
      const qo = (t * H + h) * D, kh = Math.floor(h / group);
      for (let s = lo; s <= hi; s++) {
        let dot = 0;
        const ko = (slot(s) * KH + kh) * D;
        for (let d = 0; d < D; d++) dot += q[qo + d] * kc[ko + d];
        out[(t * H + h) * S + s] = softcapped(dot * a.scale, a.softcap);
      }
    }
  }
  return out;
}

/** sum over each token's visible keys j of p[j] * v[j]. */
export function attentionValues(kv: CpuKvCache, a: OpArgs['attn_values'], p: Values, pos: Int32Array, H: number, tb: KvTables): Float64Array {
  const { kvHeads: KH, headDim: D, pageSize: P } = kv.storage;
  const S = p.length / (pos.length * H), group = H / KH, vc = kv.v[a.layer];
  const out = new Float64Array(pos.length * H * D);
  for (let t = 0; t < pos.length; t++) {
    const { lo, hi, slot } = visible(a, tb, pos, t, P);
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * D, kh = Math.floor(h / group);
      for (let s = lo; s <= hi; s++) {
        const w = p[(t * H + h) * S + s], vo = (slot(s) * KH + kh) * D;
        for (let d = 0; d < D; d++) out[o + d] += w * vc[vo + d];
      }
    }
  }
  return out;
}

/** The fused op: softmax(q.k^T * scale) . v over the visible keys, one pass per (token, head). */
export function attention(kv: CpuKvCache, a: OpArgs['attention'], q: Values, pos: Int32Array, H: number, tb: KvTables): Float64Array {
  const { kvHeads: KH, headDim: D, pageSize: P } = kv.storage;
  const group = H / KH;
  const out = new Float64Array(q.length);
  const kc = kv.k[a.layer], vc = kv.v[a.layer];
  for (let t = 0; t < pos.length; t++) {
    const { lo, hi, slot } = visible(a, tb, pos, t, P);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / group);
      const qo = (t * H + h) * D;
      const scores = new Float64Array(hi - lo + 1);
      let max = -Infinity;
      for (let s = lo; s <= hi; s++) {
        let dot = 0;
        const ko = (slot(s) * KH + kh) * D;
        for (let d = 0; d < D; d++) dot += q[qo + d] * kc[ko + d];
        scores[s - lo] = softcapped(dot * a.scale, a.softcap);
        max = Math.max(max, scores[s - lo]);
      }
      let sum = 0;
      for (let i = 0; i < scores.length; i++) { scores[i] = Math.exp(scores[i] - max); sum += scores[i]; }
      for (let s = lo; s <= hi; s++) {
        const p = scores[s - lo] / sum;
        const vo = (slot(s) * KH + kh) * D;
        for (let d = 0; d < D; d++) out[qo + d] += p * vc[vo + d];
      }
    }
  }
  return out;
}
