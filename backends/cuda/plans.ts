// Per-kind plans for the CUDA backend: from a KernelSpec, the template to fill, its
// compile-time constants, the block size (1-D: every kernel indexes threadIdx.x only) and the
// grid. The algorithms follow the WGSL kernels' (same bindings, same page and block layouts,
// from program/ through backends/cstyle/layout.ts), tuned for NVIDIA GPUs:
//   - reductions are warp shuffles (header: warp_sum / warp_max / block_sum / block_max);
//   - matmul and expert weights stream as 16-byte loads, one warp per output column, over
//     inputs staged once per block in shared memory (the prologue runs once per element);
//   - kv_append takes a warp per (KV head, token) row.
// Every shuffle is reached by every thread of its block (loops around shuffles have the same
// trip count in every warp), which the CPU emulation relies on.
import { MOE_ROWS_PER_PASS, type KernelSpec } from '../../program/kernels.ts';
import { blockElements, K_SECTIONS, type CompactType } from '../../program/quant.ts';
import type { GridDim } from '../backend.ts';
import { CUDA_DIALECT, unaryFormula } from '../cstyle/expr.ts';
import { compactWeightFormat, kvFormat, NO_COMPACT_WEIGHT, ropeTables } from '../cstyle/layout.ts';
import { positiveInt } from '../cstyle/literal.ts';
import { epilogueContext, normContext } from '../cstyle/fusions.ts';

export const TEMPLATE_NAMES = ['embed', 'slice', 'rmsnorm', 'matmul_gemv', 'matmul_tiled', 'rope', 'kv_append', 'attention', 'attention_merge', 'elementwise',
  'moe_route', 'moe_experts', 'moe_combine', 'softmax', 'attn_scores', 'attn_values'] as const;
export type CudaTemplate = (typeof TEMPLATE_NAMES)[number];

export interface CudaPlan {
  readonly template: CudaTemplate;
  /** Suffix of the variant's key ('' for the only variant); the same suffixes as the WGSL backend's. */
  readonly variant: string;
  readonly minTokens: number;
  readonly context: Record<string, unknown>;
  /** Threads per block (x only). */
  readonly threads: number;
  readonly grid: [GridDim, GridDim, GridDim];
}

/** Prefill switches from the GEMV to the tiled matmul at this many tokens (as on WebGPU). */
export const TILED_MIN_TOKENS = 8;
/** Tokens per block of the multi-token GEMV (steps of 2 .. TILED_MIN_TOKENS - 1 tokens). */
export const GEMV_TOKENS = 4;
/** Warps per GEMV / expert block: one output column each. */
const COL_WARPS = 8;
/** Bytes of shared memory a staged input tile may take (of 48 KiB static per block). */
const STAGE_BYTES = 16384;

const ONE: GridDim = { tokensPerGroup: 0, groups: 1 };
const PER_TOKEN: GridDim = { tokensPerGroup: 1, groups: 1 };
const cdiv = (a: number, b: number) => Math.ceil(a / b);
const pow2 = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, 2 ** Math.ceil(Math.log2(Math.max(1, n)))));

/** A plan with one thread per element (or per VEC elements): x covers the row in blocks of `threads`, y is the token. */
function rowPlan(template: CudaTemplate, units: number, context: Record<string, unknown>, threads = 128): CudaPlan {
  return { template, variant: '', minTokens: 1, context, threads, grid: [{ tokensPerGroup: 0, groups: cdiv(units, threads) }, PER_TOKEN, ONE] };
}

/** The vector unit of a row of K floats: float4 when K splits into them (16-byte loads), else float. */
const vecContext = (vec4: boolean) => ({ vec4, vtype: vec4 ? 'float4' : 'float', zeroV: vec4 ? 'make_float4(0.0f, 0.0f, 0.0f, 0.0f)' : '0.0f' });

/**
 * The dequant partial's holes for a [K, N] compact weight in `binding` (layout and constants:
 * program/quant.ts through backends/cstyle/layout.ts, the ones the WGSL backend takes), and
 * `unitV`: the weights a GEMV / expert lane pass reads as one unit, in V units (a staged
 * chunk holds whole units). f16 rows are read 8 halves (16 bytes) per load when K % 8 == 0,
 * else 4 (8 bytes); q8_0 / q4_0 16 bytes per lane; the K-quants a block per warp pass, one
 * word of quants per lane (q4_K / q5_K bodies are 35 / 43 words, so only 4-byte aligned).
 */
export function quantContext(wtype: CompactType | undefined, binding: string, K: number, N: number) {
  if (!wtype) return { ...NO_COMPACT_WEIGHT, f16x8: false, wtypeText: 'f32', unitV: 1 };
  const format = compactWeightFormat(wtype, binding, K, N);
  if (format.wk) {
    // The K-quant lane passes index the scale, quant and high-bit fields by whole words.
    for (const [field, at] of Object.entries(K_SECTIONS[wtype as 'q4_K' | 'q5_K' | 'q6_K'])) {
      if (at % 4 !== 0) throw new Error(`${wtype}: field ${field} at body byte ${at} is not word-aligned`);
    }
  }
  const f16x8 = format.wf16 && K % 8 === 0;
  return { ...format, f16x8, unitV: format.wf16 ? (f16x8 ? 2 : 1) : blockElements(wtype) / 4 };
}

/**
 * V units of the input rows a GEMV / expert block stages at a time: STAGE_BYTES over its
 * `rows` token rows, a multiple of 8 units and of the weight's lane unit (powers of two), so a
 * chunk holds whole 16-byte loads and whole blocks (KV is a multiple of the unit too).
 */
function stageChunk(KV: number, rows: number, vec4: boolean, unitV: number): number {
  const unit = Math.max(8, unitV);
  const chunk = Math.min(KV, Math.floor(STAGE_BYTES / (vec4 ? 16 : 4) / rows / unit) * unit);
  if (chunk < 1 || (chunk < KV && chunk % unitV !== 0)) throw new Error(`no staged chunk of ${rows} rows holds a whole weight unit of ${unitV}`);
  return chunk;
}

/** A split table's id range (compiler/splitParams.ts): ids [idOffset, idOffset + vocab) of vocabTotal. */
function embedPart(spec: Extract<KernelSpec, { kind: 'embed' }>) {
  const idOffset = spec.idOffset ?? 0, vocabTotal = spec.vocabTotal ?? spec.vocab;
  if (!Number.isInteger(idOffset) || idOffset < 0 || idOffset + spec.vocab > vocabTotal) throw new Error(`embed: ids [${idOffset}, ${idOffset + spec.vocab}) outside a vocabulary of ${vocabTotal}`);
  return { idOffset, vocabTotal, split: spec.idOffset !== undefined };
}

/** A split weight's output columns (compiler/splitParams.ts): columns [colOffset, colOffset + N) of outCols. */
function matmulPart(spec: Extract<KernelSpec, { kind: 'matmul' }>) {
  const colOffset = spec.colOffset ?? 0, outCols = spec.outCols ?? spec.N;
  if (!Number.isInteger(colOffset) || colOffset < 0 || colOffset + spec.N > outCols) throw new Error(`matmul: columns [${colOffset}, ${colOffset + spec.N}) outside rows of ${outCols}`);
  return { colOffset, outCols };
}

export function cudaPlans(spec: KernelSpec): CudaPlan[] {
  switch (spec.kind) {
    case 'slice': {
      const width = positiveInt('width', spec.width), rows = positiveInt('rows', spec.rows), len = positiveInt('len', spec.len);
      if (!(Number.isInteger(spec.start) && spec.start >= 0 && spec.start + len <= width)) throw new Error(`slice: start ${spec.start} + len ${len} outside a row of ${width}`);
      return [rowPlan('slice', rows * len, { width, rows, start: spec.start, len })];
    }
    case 'embed': {
      const dim = positiveInt('dim', spec.dim), vocab = positiveInt('vocab', spec.vocab);
      const vec4 = dim % 4 === 0;
      return [rowPlan('embed', vec4 ? dim / 4 : dim, { dim, vocab, vec: vec4 ? 4 : 1, ...embedPart(spec), ...vecContext(vec4), ...quantContext(spec.wtype, 'table', dim, vocab) })];
    }
    case 'rmsnorm': {
      const dim = positiveInt('dim', spec.dim), rows = positiveInt('rows', spec.rows ?? 1);
      if (!(spec.eps >= 0)) throw new Error(`rmsnorm eps must be >= 0, got ${spec.eps}`);
      return [{ template: 'rmsnorm', variant: '', minTokens: 1, context: { dim, eps: spec.eps, rows, ...vecContext(dim % 4 === 0) },
        threads: pow2(cdiv(dim, 4), 32, 256), grid: [PER_TOKEN, { tokensPerGroup: 0, groups: rows }, ONE] }];
    }
    case 'matmul': return matmulPlans(spec);
    case 'rope': {
      const headDim = positiveInt('headDim', spec.headDim), heads = positiveInt('heads', spec.heads);
      if (headDim % 2) throw new Error(`rope needs an even headDim, got ${headDim}`);
      return [rowPlan('rope', heads * headDim / 2, { heads, headDim, half: headDim / 2, neox: spec.neox === true, ...normContext(spec.norm), ...ropeTables(spec.theta, headDim) })];
    }
    case 'kv_append': {
      const kvHeads = positiveInt('kvHeads', spec.kvHeads), headDim = positiveInt('headDim', spec.headDim), pageSize = positiveInt('pageSize', spec.pageSize);
      const fmt = kvFormat(spec.dtype, headDim, kvHeads, pageSize);
      const rope = spec.rope !== null;
      if (rope && headDim % 2) throw new Error(`rope needs an even headDim, got ${headDim}`);
      // A warp per row; warps per block a divisor of kvHeads (at most 4) so none is idle.
      let warps = 1;
      for (let d = 1; d <= 4; d++) if (kvHeads % d === 0) warps = d;
      return [{
        template: 'kv_append', variant: '', minTokens: 1,
        context: { ...fmt, kvHeads, headDim, pageSize, warps, rope, neox: spec.neox === true, ...normContext(spec.norm), ...(rope ? { half: headDim / 2, ...ropeTables(spec.rope!, headDim) } : {}),
          rows: [{ elem: 'kelem', dst: 'kcache' }, { elem: 'velem', dst: 'vcache' }] },
        threads: 32 * warps, grid: [{ tokensPerGroup: 0, groups: kvHeads / warps }, PER_TOKEN, ONE],
      }];
    }
    case 'attention': return [attentionPlan(spec)];
    case 'attention_merge': {
      const heads = positiveInt('heads', spec.heads), headDim = positiveInt('headDim', spec.headDim);
      return [rowPlan('attention_merge', heads * headDim, { heads, headDim, splits: positiveInt('splits', spec.splits) })];
    }
    case 'elementwise': return [rowPlan('elementwise', positiveInt('width', spec.width), { width: spec.width })];
    // The runner falls back to sampling on the host where a backend renders no argmax.
    case 'argmax': throw new Error('the CUDA backend renders no argmax kernel (the host runner samples greedily itself)');
    case 'moe_route': return [moeRoutePlan(spec)];
    case 'moe_experts': return [moeExpertsPlan(spec)];
    case 'moe_combine': {
      if (positiveInt('k', spec.k) > positiveInt('experts', spec.experts)) throw new Error(`moe_combine: k ${spec.k} exceeds ${spec.experts} experts`);
      return [rowPlan('moe_combine', positiveInt('width', spec.width), { experts: spec.experts, k: spec.k, width: spec.width })];
    }
    case 'softmax': {
      const width = positiveInt('width', spec.width), rows = positiveInt('rows', spec.rows ?? 1);
      return [{ template: 'softmax', variant: '', minTokens: 1, context: { width, rows }, threads: pow2(width, 32, 256), grid: [PER_TOKEN, { tokensPerGroup: 0, groups: rows }, ONE] }];
    }
    case 'attn_scores': case 'attn_values': {
      const heads = positiveInt('heads', spec.heads), kvHeads = positiveInt('kvHeads', spec.kvHeads), headDim = positiveInt('headDim', spec.headDim);
      if (heads % kvHeads) throw new Error(`${spec.kind}: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
      if (spec.window !== null) positiveInt('window', spec.window);
      const fmt = kvFormat(spec.dtype, headDim, kvHeads, positiveInt('pageSize', spec.pageSize));
      return [{
        template: spec.kind, variant: '', minTokens: 1,
        context: { ...fmt, heads, kvHeads, headDim, group: heads / kvHeads, context: positiveInt('context', spec.context), pageSize: spec.pageSize,
          causal: spec.causal, windowed: spec.window !== null, window: spec.window ?? 0, ...(spec.kind === 'attn_scores' ? { scale: spec.scale, ...softcapContext(spec.softcap) } : {}) },
        threads: spec.kind === 'attn_scores' ? 64 : pow2(headDim, 32, 256), grid: [PER_TOKEN, { tokensPerGroup: 0, groups: heads }, ONE],
      }];
    }
  }
}

type MatmulSpec = Extract<KernelSpec, { kind: 'matmul' }>;

function matmulPlans(spec: MatmulSpec): CudaPlan[] {
  const K = positiveInt('K', spec.K), N = positiveInt('N', spec.N);
  if (spec.prologue === 'rmsnorm' && !(spec.eps >= 0)) throw new Error(`rmsnorm eps must be >= 0, got ${spec.eps}`);
  const vec4 = K % 4 === 0;
  const KV = vec4 ? K / 4 : K;
  const common = {
    K, N, KV, eps: spec.eps, residual: spec.residual, ...matmulPart(spec), ...vecContext(vec4), ...epilogueContext(spec, CUDA_DIALECT),
    // silu_mul and gelu_mul read gate and up alike; only the function of g differs.
    proNone: spec.prologue === 'none', proRmsnorm: spec.prologue === 'rmsnorm', proSiluMul: spec.prologue === 'silu_mul' || spec.prologue === 'gelu_mul',
    prologueText: { none: 'x', rmsnorm: 'rmsnorm(x) * norm', silu_mul: 'silu(gate) * up', gelu_mul: 'gelu(gate) * up' }[spec.prologue],
    siluG: unaryFormula(spec.prologue === 'gelu_mul' ? 'gelu' : 'silu', 'g', CUDA_DIALECT),
    ...quantContext(spec.wtype, 'w', K, N),
  };
  const gemv = (tpw: number, minTokens: number, variant: string): CudaPlan => {
    const chunk = stageChunk(KV, tpw, vec4, common.unitV);
    return {
      template: 'matmul_gemv', variant, minTokens, context: { ...common, warps: COL_WARPS, tpw, chunk },
      threads: COL_WARPS * 32, grid: [{ tokensPerGroup: 0, groups: cdiv(N, COL_WARPS) }, { tokensPerGroup: tpw, groups: 1 }, ONE],
    };
  };
  // Tiled: 32 tokens x 64 columns per block of 16 x 8 threads, each 4 x 4 outputs fed by 8
  // float4 shared-memory loads per 64 multiply-adds; K staged 32 at a time (13 KiB shared).
  const tile = { bt: 32, bn: 64, bk: 32, tx: 16, ty: 8, tt: 4, tn: 4 };
  const tiled: CudaPlan = {
    template: 'matmul_tiled', variant: 'tiled', minTokens: TILED_MIN_TOKENS, context: { ...common, ...tile },
    threads: tile.tx * tile.ty, grid: [{ tokensPerGroup: 0, groups: cdiv(N, tile.bn) }, { tokensPerGroup: tile.bt, groups: 1 }, ONE],
  };
  return [gemv(1, 1, 'gemv'), gemv(GEMV_TOKENS, 2, `gemv${GEMV_TOKENS}`), tiled];
}

type AttentionSpec = Extract<KernelSpec, { kind: 'attention' }>;

function attentionPlan(spec: AttentionSpec): CudaPlan {
  const heads = positiveInt('heads', spec.heads), kvHeads = positiveInt('kvHeads', spec.kvHeads), headDim = positiveInt('headDim', spec.headDim);
  if (heads % kvHeads) throw new Error(`attention: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
  if (headDim > 256) throw new Error(`attention supports headDim up to 256, got ${headDim}`);
  if (spec.window !== null) positiveInt('window', spec.window);
  const pageSize = positiveInt('pageSize', spec.pageSize);
  const fmt = kvFormat(spec.dtype, headDim, kvHeads, pageSize);
  const group = heads / kvHeads;
  // Output slots of 4 dims (float4) when rows split into them, else 1; the query heads of one
  // block are a divisor of the group (never straddling two KV heads), at most 8, one output
  // slot per thread in a block of at most 256.
  const vec4 = headDim % 4 === 0;
  const dps = vec4 ? 4 : 1;
  const block = 64;
  let qpw = 1;
  for (let d = 1; d <= Math.min(group, 8); d++) if (group % d === 0 && (d * headDim) / dps <= 256) qpw = d;
  const threads = pow2(Math.max((qpw * headDim) / dps, qpw * block), 64, 256);
  // Query rows padded with zeros to whole packed words (and to float4s).
  const qstride = Math.ceil((fmt.f32 ? headDim : fmt.rowWords * fmt.perWord) / 4) * 4;
  const splits = positiveInt('splits', spec.splits);
  return {
    template: 'attention', variant: '', minTokens: 1,
    context: {
      ...fmt, heads, kvHeads, headDim, group, qpw, block, pageSize, scale: spec.scale, causal: spec.causal, windowed: spec.window !== null, window: spec.window ?? 0,
      ...softcapContext(spec.softcap),
      ...vecContext(vec4), dps, hdq: headDim / dps, qstride, qsLen4: (qpw * qstride) / 4, pLen: qpw * block, split: splits > 1, splits,
      // 16-byte loads of packed K rows when every row starts on 16 bytes.
      w16: !fmt.f32 && fmt.rowWords % 4 === 0 && fmt.pageWords % 4 === 0,
    },
    threads, grid: [PER_TOKEN, { tokensPerGroup: 0, groups: heads / qpw }, { tokensPerGroup: 0, groups: splits }],
  };
}

/** Soft-capping's holes (attention and attn_scores): the cap and tanh of a = s / cap (clamped as the dialect asks). */
function softcapContext(cap: number | undefined) {
  if (cap === undefined) return { softcap: false };
  if (!(cap > 0) || !Number.isFinite(cap)) throw new Error(`attention softcap must be positive, got ${cap}`);
  return { softcap: true, cap, tanhA: unaryFormula('tanh', 'a', CUDA_DIALECT) };
}

type MoeRouteSpec = Extract<KernelSpec, { kind: 'moe_route' }>;
type MoeExpertsSpec = Extract<KernelSpec, { kind: 'moe_experts' }>;

function moeRoutePlan(spec: MoeRouteSpec): CudaPlan {
  const experts = positiveInt('experts', spec.experts), k = positiveInt('k', spec.k), K = positiveInt('K', spec.K);
  if (k > experts) throw new Error(`moe_route: k ${k} exceeds ${experts} experts`);
  if (!Number.isFinite(spec.scale)) throw new Error(`moe_route: scale must be finite, got ${spec.scale}`);
  return {
    template: 'moe_route', variant: '', minTokens: 1,
    context: {
      K, experts, k, scale: spec.scale, depth0: 2 * Math.floor(Math.log2(experts)), stageX: !spec.direct && K <= 8192,
      direct: spec.direct, scoreSoftmax: spec.score === 'softmax', scoreSigmoid: spec.score === 'sigmoid',
      scoreText: spec.direct ? 'x[t] (given)' : `${{ softmax: 'softmax', sigmoid: 'sigmoid', none: '' }[spec.score]}(x[t] @ router)`,
      sigmoidV: unaryFormula('sigmoid', 'v', CUDA_DIALECT), postSoftmax: spec.softmax, normalise: spec.softmax || spec.renorm,
    },
    threads: 128, grid: [PER_TOKEN, ONE, ONE],
  };
}

function moeExpertsPlan(spec: MoeExpertsSpec): CudaPlan {
  const K = positiveInt('K', spec.K), N = positiveInt('N', spec.N), experts = positiveInt('experts', spec.experts), k = positiveInt('k', spec.k);
  if (spec.residual && !spec.combine) throw new Error('moe_experts: a residual needs combine');
  if (spec.dense && (k !== experts || spec.combine || spec.input === 'silu_mul' || spec.input === 'swiglu')) throw new Error('moe_experts: a dense kernel has k = experts, one input and no combine');
  const vec4 = K % 4 === 0;
  const KV = vec4 ? K / 4 : K;
  const swiglu = spec.input === 'swiglu';
  const pairs = MOE_ROWS_PER_PASS;
  const quant = quantContext(spec.wtype, 'w', K, N * experts);
  return {
    template: 'moe_experts', variant: '', minTokens: 1,
    context: {
      ...quant, ...(spec.wtype && swiglu ? { qbinding2: 'w2' } : {}),
      N, KV, experts, k, warps: COL_WARPS, pairs, chunk: stageChunk(KV, pairs, vec4, quant.unitV), ...vecContext(vec4),
      combine: spec.combine, residual: spec.residual, dense: spec.dense,
      inShared: spec.input === 'shared' || swiglu, inSlot: spec.input === 'slot', inSiluMul: spec.input === 'silu_mul', swiglu, needSilu: swiglu || spec.input === 'silu_mul',
      inputText: { shared: 'x[t]', slot: 'x[s]', silu_mul: 'silu(gate[s]) * up[s]', swiglu: 'x[t]' }[spec.input],
      siluG: unaryFormula('silu', 'g', CUDA_DIALECT),
    },
    threads: COL_WARPS * 32,
    grid: [{ tokensPerGroup: 0, groups: cdiv(N, COL_WARPS) }, spec.combine ? ONE : { tokensPerGroup: 0, groups: experts }, ONE],
  };
}
