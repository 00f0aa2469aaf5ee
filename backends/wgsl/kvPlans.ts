// Plans of the kernels that touch the paged KV cache: the append (RoPE, quantisation,
// scatter into pages), the fused PagedAttention and its split-K merge partner's layout, and
// the unfused attention's scores and P.V; plus the formats' packing constants.
import type { KernelSpec } from '../../program/kernels.ts';
import { kvFormat, ropeTables } from '../cstyle/layout.ts';
import { positiveInt } from '../cstyle/literal.ts';
import { unaryFormula, WGSL_DIALECT } from '../cstyle/expr.ts';
import { normContext } from '../cstyle/fusions.ts';
import { cdiv, clampPow2, ONE, PER_TOKEN, type Plan } from './plan.ts';

export { kvFormat, ropeTables };

export function kvAppendPlan(spec: Extract<KernelSpec, { kind: 'kv_append' }>): Plan {
  const kvHeads = positiveInt('kvHeads', spec.kvHeads), headDim = positiveInt('headDim', spec.headDim);
  const fmt = kvFormat(spec.dtype, headDim, kvHeads, positiveInt('pageSize', spec.pageSize));
  const rope = spec.rope !== null;
  if (rope && headDim % 2) throw new Error(`rope needs an even headDim, got ${headDim}`);
  const wg = clampPow2(kvHeads, 1, 64);
  return {
    template: 'kv_append', variant: '', minTokens: 1,
    context: {
      ...fmt, kvHeads, headDim, pageSize: positiveInt('pageSize', spec.pageSize), wg, rope, neox: spec.neox === true, ...normContext(spec.norm),
      ...(rope ? { half: headDim / 2, ...ropeTables(spec.rope!, headDim) } : {}),
      rows: [{ elem: 'kelem', dst: 'kcache' }, { elem: 'velem', dst: 'vcache' }],
    },
    workgroup: [wg, 1, 1], grid: [{ tokensPerGroup: 0, groups: cdiv(kvHeads, wg) }, PER_TOKEN, ONE],
    vec4Bindings: [],
  };
}

type AttentionSpec = Extract<KernelSpec, { kind: 'attention' }>;

export function attentionPlan(spec: AttentionSpec): Plan {
  const heads = positiveInt('heads', spec.heads), kvHeads = positiveInt('kvHeads', spec.kvHeads);
  const headDim = positiveInt('headDim', spec.headDim);
  if (heads % kvHeads) throw new Error(`attention: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
  if (headDim > 256) throw new Error(`attention supports headDim up to 256, got ${headDim}`);
  if (spec.window !== null) positiveInt('window', spec.window);
  const fmt = kvFormat(spec.dtype, headDim, kvHeads, positiveInt('pageSize', spec.pageSize));
  const group = heads / kvHeads;
  // When rows split into whole vec4s, queries are vec4s and every format dequantises a
  // vec4 at a time (f32 reads, two unpack2x16float, unpack4x8snorm, or vector shifts for
  // int4), so the score is a vec4 dot and each output slot is 4 dims; otherwise scalars.
  // Query rows are padded with zeros to whole packed words.
  const vec4 = headDim % 4 === 0;
  const lanes = vec4 ? 4 : 1;
  // The most query heads of a group one workgroup takes: a divisor of the group (so a
  // workgroup never straddles two KV heads), at most 8, and one output slot (head, lanes
  // dims) per invocation in a workgroup of at most 256 (WebGPU's default limit). With vec4
  // slots a group of 8 at head_dim 128 (or 4 at 256) is one workgroup, reading K/V once.
  const block = 64;
  let qpw = 1;
  for (let d = 1; d <= Math.min(group, 8); d++) if (group % d === 0 && (d * headDim) / lanes <= 256) qpw = d;
  // Enough invocations for the output slots and for scoring a block's (head, key) pairs.
  const wg = clampPow2(Math.max((qpw * headDim) / lanes, qpw * block), 64, 256);
  const qstride = (fmt.f32 ? headDim : fmt.rowWords * fmt.perWord) / lanes;
  const splits = positiveInt('splits', spec.splits);
  return {
    template: 'attention', variant: '', minTokens: 1,
    context: {
      ...fmt, heads, kvHeads, headDim, group, qpw, wg, block, pageSize: positiveInt('pageSize', spec.pageSize),
      scale: spec.scale, causal: spec.causal, windowed: spec.window !== null, window: spec.window ?? 0, ...softcapContext(spec.softcap),
      vec4, vtype: vec4 ? 'vec4<f32>' : 'f32', qstride, hdq: headDim / lanes, qsLen: qpw * qstride, pLen: qpw * block, split: splits > 1, splits,
    },
    workgroup: [wg, 1, 1], grid: [PER_TOKEN, { tokensPerGroup: 0, groups: heads / qpw }, { tokensPerGroup: 0, groups: splits }],
    vec4Bindings: vec4 ? ['q', ...(fmt.f32 ? ['kcache', 'vcache'] : []), ...(splits > 1 ? [] : ['out'])] : [],
  };
}

/** The soft-capping holes of the attention templates: a cap and tanh(a) (clamped, as every tanh), or none. */
function softcapContext(cap: number | undefined) {
  if (cap === undefined) return { softcap: false };
  if (!(cap > 0) || !Number.isFinite(cap)) throw new Error(`attention softcap must be positive, got ${cap}`);
  return { softcap: true, cap, tanhA: unaryFormula('tanh', 'a', WGSL_DIALECT) };
}

type UnfusedSpec = Extract<KernelSpec, { kind: 'attn_scores' | 'attn_values' }>;

/** The unfused attention's scores and P.V kernels (--no-fuse attention): one workgroup per (token, head). */
export function attentionUnfusedPlan(spec: UnfusedSpec): Plan {
    const heads = positiveInt('heads', spec.heads), kvHeads = positiveInt('kvHeads', spec.kvHeads), headDim = positiveInt('headDim', spec.headDim);
    if (heads % kvHeads) throw new Error(`${spec.kind}: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
    if (spec.window !== null) positiveInt('window', spec.window);
    const fmt = kvFormat(spec.dtype, headDim, kvHeads, positiveInt('pageSize', spec.pageSize));
    const wg = spec.kind === 'attn_scores' ? 64 : clampPow2(headDim, 32, 256);
    return {
      template: spec.kind, variant: '', minTokens: 1,
      context: {
        ...fmt, heads, kvHeads, headDim, group: heads / kvHeads, context: positiveInt('context', spec.context), wg, pageSize: spec.pageSize,
        causal: spec.causal, windowed: spec.window !== null, window: spec.window ?? 0, ...(spec.kind === 'attn_scores' ? { scale: spec.scale, ...softcapContext(spec.softcap) } : {}),
      },
      workgroup: [wg, 1, 1], grid: [PER_TOKEN, { tokensPerGroup: 0, groups: heads }, ONE], vec4Bindings: [],
    };
}
