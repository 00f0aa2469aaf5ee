// Per-kind plans for the WGSL backend: from a KernelSpec, the template to fill, its
// compile-time constants, the workgroup shape and the grid. The choices (and why):
//   embed, kv_store, rope, elementwise: one invocation per element, x over the row in
//     workgroups of 64 (small rows are common: a 64-wide row fills one group), y = token.
//   rmsnorm: one workgroup per token row, power-of-two size up to 256, tree reduction.
//   matmul: a GEMV for decode (minTokens 1) and a BT x BN tiled kernel for prefill
//     (minTokens TILED_MIN_TOKENS); on a CPU adapter with subgroups, the subgroup-tiled
//     kernel from 2 tokens on and (f32) a subgroup GEMV; see the templates for the algorithms.
//   attention: one workgroup per (token, QPW query heads of one KV head).
// Workgroups stay within WebGPU's default limits (256 invocations, 16 KiB shared).
import { MOE_ROWS_PER_PASS, type KernelSpec } from '../../program/kernels.ts';
import { GPU_TARGET, type Target } from '../backend.ts';
import { unaryFormula, WGSL_DIALECT } from '../cstyle/expr.ts';
import { epilogueContext, normContext } from '../cstyle/fusions.ts';
import { positiveInt } from '../cstyle/literal.ts';
import type { CompactType } from '../../program/quant.ts';
import { compactWeightFormat, NO_COMPACT_WEIGHT } from '../cstyle/layout.ts';
import type { TemplateName } from './templates.ts';
import { attentionPlan, attentionUnfusedPlan, kvAppendPlan, ropeTables } from './kvPlans.ts';
import { cdiv, clampPow2, ONE, PER_TOKEN, ROW_WG, type Plan } from './plan.ts';

export type { Plan };
export { ropeTables };

/** Prefill switches from the GEMV to the tiled matmul at this many tokens. */
export const TILED_MIN_TOKENS = 8;
/** Tokens per workgroup of the multi-token GEMV (steps of 2 .. TILED_MIN_TOKENS - 1 tokens). */
export const GEMV_TOKENS = 4;

/** An elementwise-style plan: x covers `width` elements in groups of 64, y is the token. */
function rowPlan(template: TemplateName, width: number, context: Record<string, unknown>, f16Bindings: readonly string[] = []): Plan {
  return {
    template, variant: '', minTokens: 1, context: { ...context, wg: ROW_WG }, workgroup: [ROW_WG, 1, 1],
    grid: [{ tokensPerGroup: 0, groups: cdiv(width, ROW_WG) }, PER_TOKEN, ONE], vec4Bindings: [], f16Bindings,
  };
}

/** The weight bindings a plan declares as array<vec4<f16>>: f16 weights where the device has shader-f16. */
function f16Of(wtype: CompactType | undefined, target: Target, bindings: readonly string[]): readonly string[] {
  return wtype === 'f16' && target.f16 ? bindings : [];
}

export function plansFor(spec: KernelSpec, target: Target = GPU_TARGET): Plan[] {
  switch (spec.kind) {
    case 'embed':
      return [rowPlan('embed', positiveInt('dim', spec.dim), { dim: spec.dim, vocab: positiveInt('vocab', spec.vocab), ...embedPart(spec), ...quantContext(spec.wtype, 'table', spec.dim, spec.vocab, target) }, f16Of(spec.wtype, target, ['table']))];
    case 'rmsnorm': {
      const wg = clampPow2(cdiv(positiveInt('dim', spec.dim), 4), 32, 256);
      const rows = positiveInt('rows', spec.rows ?? 1);
      return [{ template: 'rmsnorm', variant: '', minTokens: 1, context: { dim: spec.dim, eps: spec.eps, wg, rows },
        workgroup: [wg, 1, 1], grid: [PER_TOKEN, { tokensPerGroup: 0, groups: rows }, ONE], vec4Bindings: [] }];
    }
    case 'matmul': return matmulPlans(spec, target);
    case 'rope': {
      const headDim = positiveInt('headDim', spec.headDim);
      if (headDim % 2) throw new Error(`rope needs an even headDim, got ${headDim}`);
      return [rowPlan('rope', positiveInt('heads', spec.heads) * headDim / 2, { heads: spec.heads, headDim, half: headDim / 2, neox: spec.neox === true, ...normContext(spec.norm), ...ropeTables(spec.theta, headDim) })];
    }
    case 'kv_append': return [kvAppendPlan(spec)];
    case 'attention': return [attentionPlan(spec)];
    case 'attention_merge': {
      const heads = positiveInt('heads', spec.heads), headDim = positiveInt('headDim', spec.headDim);
      return [rowPlan('attention_merge', heads * headDim, { heads, headDim, splits: positiveInt('splits', spec.splits) })];
    }
    case 'elementwise':
      return [rowPlan('elementwise', positiveInt('width', spec.width), { width: spec.width })];
    case 'slice': {
      const width = positiveInt('width', spec.width), rows = positiveInt('rows', spec.rows), len = positiveInt('len', spec.len);
      if (!(Number.isInteger(spec.start) && spec.start >= 0 && spec.start + len <= width)) throw new Error(`slice: start ${spec.start} + len ${len} outside a row of ${width}`);
      return [rowPlan('slice', rows * len, { width, rows, start: spec.start, len })];
    }
    case 'moe_route': return [moeRoutePlan(spec)];
    case 'moe_experts': return [moeExpertsPlan(spec, target)];
    case 'moe_combine': {
      if (positiveInt('k', spec.k) > positiveInt('experts', spec.experts)) throw new Error(`moe_combine: k ${spec.k} exceeds ${spec.experts} experts`);
      return [rowPlan('moe_combine', positiveInt('width', spec.width), { experts: spec.experts, k: spec.k, width: spec.width })];
    }
    case 'attn_scores': case 'attn_values': return [attentionUnfusedPlan(spec)];
    case 'softmax': {
      const wg = clampPow2(positiveInt('width', spec.width), 32, 256);
      const rows = positiveInt('rows', spec.rows ?? 1);
      return [{ template: 'softmax', variant: '', minTokens: 1, context: { width: spec.width, rows, wg }, workgroup: [wg, 1, 1], grid: [PER_TOKEN, { tokensPerGroup: 0, groups: rows }, ONE], vec4Bindings: [] }];
    }
    case 'argmax': {
      // One workgroup per requested row (the runtime passes the row count as the step's tokens).
      const wg = clampPow2(cdiv(positiveInt('width', spec.width), 4), 32, 256);
      return [{ template: 'argmax', variant: '', minTokens: 1, context: { width: spec.width, wg }, workgroup: [wg, 1, 1], grid: [PER_TOKEN, ONE, ONE], vec4Bindings: [] }];
    }
  }
}

type MoeRouteSpec = Extract<KernelSpec, { kind: 'moe_route' }>;
type MoeExpertsSpec = Extract<KernelSpec, { kind: 'moe_experts' }>;

// moe_route: one 64-wide workgroup per token; as many invocations per expert as
// divide the workgroup evenly (a power of two), so small expert counts still use it all.
function moeRoutePlan(spec: MoeRouteSpec): Plan {
  const experts = positiveInt('experts', spec.experts), k = positiveInt('k', spec.k);
  positiveInt('K', spec.K);
  if (k > experts) throw new Error(`moe_route: k ${k} exceeds ${experts} experts`);
  if (!Number.isFinite(spec.scale)) throw new Error(`moe_route: scale must be finite, got ${spec.scale}`);
  const wg = 64;
  const lanes = 2 ** Math.floor(Math.log2(Math.max(1, Math.floor(wg / experts))));
  return {
    template: 'moe_route', variant: '', minTokens: 1,
    context: {
      K: spec.K, experts, k, wg, lanes, slots: wg / lanes, scale: spec.scale,
      direct: spec.direct, scoreSoftmax: spec.score === 'softmax', scoreSigmoid: spec.score === 'sigmoid',
      scoreText: spec.direct ? 'x[t] (given)' : `${{ softmax: 'softmax', sigmoid: 'sigmoid', none: '' }[spec.score]}(x[t] @ router)`,
      sigmoidV: unaryFormula('sigmoid', 'v', WGSL_DIALECT), postSoftmax: spec.softmax, normalise: spec.softmax || spec.renorm,
    },
    workgroup: [wg, 1, 1], grid: [PER_TOKEN, ONE, ONE], vec4Bindings: [],
  };
}

// moe_experts: one invocation per output column (64 per workgroup), P = MOE_ROWS_PER_PASS
// routed rows at a time; per-slot kernels spread experts over grid y, the combining kernel loops
// over them so each output element has a single writer (no float atomics in WGSL).
// Compact experts (wtype: f16 or blocks) are dequantised in registers.
function moeExpertsPlan(spec: MoeExpertsSpec, target: Target): Plan {
  const K = positiveInt('K', spec.K), N = positiveInt('N', spec.N), experts = positiveInt('experts', spec.experts), k = positiveInt('k', spec.k);
  if (spec.residual && !spec.combine) throw new Error('moe_experts: a residual needs combine');
  if (spec.dense && (k !== experts || spec.combine || spec.input === 'silu_mul' || spec.input === 'swiglu')) throw new Error('moe_experts: a dense kernel has k = experts, one input and no combine');
  const vec4 = K % 4 === 0;
  const wg = 64;
  // Block experts: the [K, N, E] tensor is the flat [K, N * E] block matrix the GEMV reads
  // (K % 32 == 0, so vec4 holds); a swiglu pair's w2 has w's type and size (quantParams.ts).
  const quant = quantContext(spec.wtype, 'w', K, N * experts, target);
  const swiglu = spec.input === 'swiglu';
  return {
    template: 'moe_experts', variant: '', minTokens: 1,
    context: {
      ...quant, ...(spec.wtype && swiglu ? { qbinding2: 'w2' } : {}),
      N, KV: vec4 ? K / 4 : K, experts, k, wg, pairs: MOE_ROWS_PER_PASS, vec4, vtype: vec4 ? 'vec4<f32>' : 'f32',
      combine: spec.combine, residual: spec.residual, dense: spec.dense,
      inShared: spec.input === 'shared' || swiglu, inSlot: spec.input === 'slot', inSiluMul: spec.input === 'silu_mul', swiglu,
      inputText: { shared: 'x[t]', slot: 'x[s]', silu_mul: 'silu(gate[s]) * up[s]', swiglu: 'x[t]' }[spec.input],
      siluAcc: unaryFormula('silu', 'acc[p]', WGSL_DIALECT),
      siluG: unaryFormula('silu', 'g', WGSL_DIALECT),
    },
    workgroup: [wg, 1, 1],
    grid: [{ tokensPerGroup: 0, groups: cdiv(N, wg) }, spec.combine ? ONE : { tokensPerGroup: 0, groups: experts }, ONE],
    vec4Bindings: vec4 ? ['x', 'gate', 'up', ...(spec.wtype ? [] : ['w', 'w2'])] : [],
    f16Bindings: f16Of(spec.wtype, target, swiglu ? ['w', 'w2'] : ['w']),
  };
}

type MatmulSpec = Extract<KernelSpec, { kind: 'matmul' }>;
type EmbedSpec = Extract<KernelSpec, { kind: 'embed' }>;

// A split param's part offset is not compiled in: the kernel reads it from the step uniform's
// `part` (program/stepUniform.ts), so a param's equal parts render the same source and share
// one pipeline. Only the widths are constants; the offset is checked here all the same.

/** A split table's id range (compiler/splitParams.ts): ids [idOffset, idOffset + vocab) of vocabTotal. */
function embedPart(spec: EmbedSpec) {
  const idOffset = spec.idOffset ?? 0, vocabTotal = spec.vocabTotal ?? spec.vocab;
  if (!Number.isInteger(idOffset) || idOffset < 0 || idOffset + spec.vocab > vocabTotal) throw new Error(`embed: ids [${idOffset}, ${idOffset + spec.vocab}) outside a vocabulary of ${vocabTotal}`);
  return { vocabTotal, split: spec.idOffset !== undefined };
}

/** A split weight's output columns (compiler/splitParams.ts): columns [colOffset, colOffset + N) of outCols. */
function matmulPart(spec: MatmulSpec) {
  const colOffset = spec.colOffset ?? 0, outCols = spec.outCols ?? spec.N;
  if (!Number.isInteger(colOffset) || colOffset < 0 || colOffset + spec.N > outCols) throw new Error(`matmul: columns [${colOffset}, ${colOffset + spec.N}) outside rows of ${outCols}`);
  return { outCols };
}

/**
 * The gated prologue's function of g (a scalar or, in the vec4 GEMV, a vec4): silu, or gelu,
 * whose tanh clamp needs its bounds splatted to g's type (WGSL's clamp does not mix them).
 */
function gluFormula(prologue: MatmulSpec['prologue'], type: 'f32' | 'vec4<f32>'): string {
  if (prologue !== 'gelu_mul') return unaryFormula('silu', 'g', WGSL_DIALECT);
  return unaryFormula('gelu', 'g', { ...WGSL_DIALECT, clamp: (x, lo, hi) => `clamp(${x}, ${type}(${lo}), ${type}(${hi}))` });
}

/**
 * The dequant partial's holes for a [K, N] compact weight in `binding` (or quant: false).
 * Blocks run along K, so K must be a multiple of the block length (the scheduler only
 * keeps such params compact). q8_0 and q4_0 have hand-unrolled loops in the GEMV and
 * expert kernels; every other compact type (`wgen`) is read there through wq4, one vec4
 * of weights at a time.
 */
function quantContext(wtype: CompactType | undefined, binding: string, K: number, N: number, target: Target) {
  if (!wtype) return { ...NO_COMPACT_WEIGHT, f16native: false, wgen: false };
  const format = compactWeightFormat(wtype, binding, K, N);
  return { ...format, f16native: format.wf16 && Boolean(target.f16), wgen: wtype !== 'q8_0' && wtype !== 'q4_0' };
}

function matmulPlans(spec: MatmulSpec, target: Target): Plan[] {
  const K = positiveInt('K', spec.K), N = positiveInt('N', spec.N);
  if (spec.prologue === 'rmsnorm' && !(spec.eps >= 0)) throw new Error(`rmsnorm eps must be >= 0, got ${spec.eps}`);
  const common = {
    K, N, ...matmulPart(spec), eps: spec.eps, residual: spec.residual, ...epilogueContext(spec, WGSL_DIALECT),
    // silu_mul and gelu_mul read gate and up alike (the templates' proSiluMul); only g's function differs.
    proNone: spec.prologue === 'none', proRmsnorm: spec.prologue === 'rmsnorm', proSiluMul: spec.prologue === 'silu_mul' || spec.prologue === 'gelu_mul',
    prologueText: { none: 'x', rmsnorm: 'rmsnorm(x) * norm', silu_mul: 'silu(gate) * up', gelu_mul: 'gelu(gate) * up' }[spec.prologue],
    siluG: gluFormula(spec.prologue, 'f32'),
    ...quantContext(spec.wtype, 'w', K, N, target),
  };
  const f16Bindings = f16Of(spec.wtype, target, ['w']);
  // GEMV: vec4 reads when rows split into whole vec4s. On a GPU 8 lanes per column read 128
  // contiguous bytes per step (a full cache line / coalesced segment), 4 for rows shorter
  // than 32 vec4s; columns fill a 256-invocation workgroup. On a CPU target each invocation
  // streams its own column's row: llama-20m decode on lavapipe, GEMV time per token with
  // 1 / 2 / 4 / 8 / 16 lanes: 28 / 31 / 35 / 45 / 68 ms (bench/profile.ts).
  const vec4 = K % 4 === 0;
  const KV = vec4 ? K / 4 : K;
  const lanes = target.kind === 'cpu' ? 1 : KV >= 32 ? 8 : 4;
  // 256 invocations either way (on lavapipe 32..256 measured the same).
  const wg = 256;
  const cols = wg / lanes;
  // A variant per tokens-per-workgroup: 1 for decode, GEMV_TOKENS for small batches and
  // speculative verification (2..7 tokens), where each weight read then serves every token
  // of the group instead of being repeated per token. Staged input stays within 4 KiB.
  const sgSize = subgroupTileSize(target);
  const gemvPlan = (tpw: number, minTokens: number, variant: string): Plan => {
    const chunk = Math.min(KV, (vec4 ? 256 : 1024) / tpw);
    // A CPU adapter with subgroups: the input goes from lane to lane by subgroupBroadcast
    // instead of through shared memory, in workgroups of SG_TILED_WG columns (small N, e.g. a
    // KV projection's 128, still spreads over several CPU threads); compact weights through
    // wq4 (q4_0 decode 1.26x to 1.41x the hand-unrolled shared-memory loop, bench/prefill.ts).
    const sg = sgSize > 0;
    const [w, c] = sg ? [SG_TILED_WG, SG_TILED_WG] : [wg, cols];
    return {
      template: 'matmul_gemv', variant, minTokens,
      context: {
        ...common, siluG: gluFormula(spec.prologue, vec4 ? 'vec4<f32>' : 'f32'), vec4, vtype: vec4 ? 'vec4<f32>' : 'f32', KV, lanes: sg ? 1 : lanes, cols: c, wg: w, chunk, tpw, tileLen: chunk * tpw, redLen: w * tpw, rsumLen: 16 * tpw,
        sg, ...(sg ? { sgSize, sgLanes: Array.from({ length: sgSize }, (_, i) => i) } : {}),
      },
      workgroup: [w, 1, 1], grid: [{ tokensPerGroup: 0, groups: cdiv(N, c) }, { tokensPerGroup: tpw, groups: 1 }, ONE],
      vec4Bindings: vec4 ? ['x', 'norm', 'gate', 'up', ...(spec.wtype ? [] : ['w'])] : [], f16Bindings, subgroups: sg,
    };
  };
  const gemv = gemvPlan(1, 1, 'gemv');
  const gemvMulti = gemvPlan(GEMV_TOKENS, 2, `gemv${GEMV_TOKENS}`);
  // Tiled: 32 tokens x 64 columns per 16 x 8 workgroup, each invocation 4 x 4 outputs fed
  // by 8 vec4 shared-memory loads per 64 multiply-adds; K staged 32 at a time (13 KiB shared).
  const tile = { bt: 32, bn: 64, bk: 32, tx: 16, ty: 8, tt: 4, tn: 4, ttn: 16 };
  // On a CPU target the 4-token GEMV stays ahead of the tiled kernel up to about 16 tokens
  // (llama-20m on lavapipe: 8 tokens 80 vs 178 ms, 16 tokens 160 vs 174 ms).
  const tiled: Plan = {
    template: 'matmul_tiled', variant: 'tiled', minTokens: target.kind === 'cpu' ? 2 * TILED_MIN_TOKENS : TILED_MIN_TOKENS,
    context: { ...common, ...tile, sg: false, av4: false }, workgroup: [tile.tx, tile.ty, 1],
    grid: [{ tokensPerGroup: 0, groups: cdiv(N, tile.bn) }, { tokensPerGroup: tile.bt, groups: 1 }, ONE], vec4Bindings: [], f16Bindings,
  };
  if (sgSize === 0) return [gemv, gemvMulti, tiled];
  // A CPU adapter with a fixed subgroup size: the subgroup-tiled kernel for every multi-token
  // step, as tiles of 1, 2 and 4 token groups (SG tokens each) from the token count that fills
  // them. One group with one column per invocation measured best at 4..8 tokens, two columns
  // with more groups (a kernel microbenchmark on lavapipe: bench/results/prefill-notes.md).
  const sgPlan = (groups: number, tn: number, minTokens: number, variant: string): Plan => {
    const bt = groups * sgSize, wg = SG_TILED_WG;
    return {
      template: 'matmul_tiled', variant, minTokens,
      context: {
        ...common, siluG: gluFormula(spec.prologue, vec4 ? 'vec4<f32>' : 'f32'), av4: vec4,
        bt, bn: wg * tn, bk: 4, tx: wg, ty: 1, tt: bt, tn, ttn: bt * tn, sg: true, sgSize, sgTokenGroups: groups,
        sgGroups: Array.from({ length: groups }, (_, g) => g),
        sgRows: Array.from({ length: bt }, (_, row) => ({ g: Math.floor(row / sgSize), lane: row % sgSize, row })),
      },
      workgroup: [wg, 1, 1], grid: [{ tokensPerGroup: 0, groups: cdiv(N, wg * tn) }, { tokensPerGroup: bt, groups: 1 }, ONE],
      vec4Bindings: vec4 ? ['x', 'norm', 'gate', 'up', ...(spec.wtype ? [] : ['w'])] : [], f16Bindings, subgroups: true,
    };
  };
  return [gemv, sgPlan(1, 1, 2, `sg${sgSize}`), sgPlan(2, 2, 2 * sgSize, 'tiled'), sgPlan(4, 2, 4 * sgSize, `sg${4 * sgSize}`)];
}

/** Invocations of a subgroup-tiled matmul workgroup (its RMS prologue gives each of up to 4 x SG token rows WG / BT invocations). */
const SG_TILED_WG = 64;

/**
 * The subgroup size the subgroup-tiled matmul is built for, or 0 to use the shared-memory
 * kernels: only on CPU targets (where lanes are SIMD lanes and the tiles' barriers and
 * shared-memory gathers cost most), and only for a power-of-two size whose 4-group tile
 * fits the workgroup.
 */
function subgroupTileSize(target: Target): number {
  const s = target.subgroupSize;
  return target.kind === 'cpu' && s !== undefined && Number.isInteger(s) && s >= 4 && s <= SG_TILED_WG / 4 && (s & (s - 1)) === 0 ? s : 0;
}

