// What a step costs, derived from the Program alone: bytes each dispatch moves,
// FLOPs, the KV-cache formula, and the analytic minimum a decode step must read
// (every weight once, the live KV once). Benchmarks report measured figures
// against these numbers.
import { MOE_ROWS_PER_PASS, type KernelSpec } from '../program/kernels.ts';
import { type Program } from '../program/program.ts';
import { activationPerToken } from './planMemory.ts';
import { tokenBytesPerLayer } from '../program/kv.ts';
import { isCompactType, weightBytes, type WeightType } from '../program/quant.ts';

export interface StepCost { readonly label: string; readonly kind: KernelSpec['kind']; readonly bytesRead: number; readonly bytesWritten: number; readonly flops: number }

export interface ForwardCost {
  readonly tokens: number;
  readonly context: number;
  readonly dispatches: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly flops: number;
  readonly steps: readonly StepCost[];
}

const F32 = 4;

/**
 * KV-cache bytes: 2 x layers x kv_heads x head_dim x seq_len x batch x bytes_per_value,
 * bytes_per_value from the program's KV dtype (int8/int4 rows also carry one f32 scale,
 * and rows are padded to whole 32-bit words: both counted).
 */
export function kvCacheBytes(p: Program, seqLen: number, batch = 1): number {
  return p.model.layers * tokenBytesPerLayer(p.kv) * seqLen * batch;
}

/**
 * Device bytes of the activations at `tokens` tokens per forward: every arena (shared by
 * buffers never live together, planMemory.ts) and every activation with its own storage,
 * 4 bytes per value. The logits, KV pool and inputs are not activations.
 */
export function activationBytes(p: Program, tokens: number): number {
  return activationPerToken(p) * tokens * F32;
}

/** A param's device type (f16 or a block type when the Program keeps it compact). */
export function paramType(p: Program, name: string): WeightType {
  const d = p.buffers.find((b) => b.name === `param:${name}` || b.part?.of === name);
  return d && isCompactType(d.dtype) ? d.dtype : 'f32';
}

/** Bytes of every weight as the kernels read it: 4 per f32 value, 2 per f16, the file's block bytes for block types. */
export function paramBytes(p: Program): number {
  return p.params.reduce((sum, q) => sum + weightBytes(paramType(p, q.name), q.shape.reduce((a, b) => a * b, 1)), 0);
}

/** Keys a step of T tokens ending at position context-1 reads: the whole context, or what the window reaches. */
const keySpan = (window: number | null, T: number, context: number): number => (window === null ? context : Math.min(context, window + T - 1));

/** Bytes one dispatch of `spec` reads and writes, and its FLOPs, for T tokens whose last position is context-1. */
export function kernelCost(spec: KernelSpec, T: number, context: number): Omit<StepCost, 'label' | 'kind'> {
  switch (spec.kind) {
    case 'embed': {
      // A part of a split table (splitParams.ts) reads every token id, and the rows of its
      // share of them: vocab / vocabTotal under uniformly drawn ids, so the parts add up to
      // the unsplit table's rows.
      const share = spec.vocab / (spec.vocabTotal ?? spec.vocab);
      return { bytesRead: T * 4 + share * T * weightBytes(spec.wtype ?? 'f32', spec.dim), bytesWritten: share * T * spec.dim * F32, flops: 0 };
    }
    case 'rmsnorm': { const rows = T * (spec.rows ?? 1); return { bytesRead: (rows + 1) * spec.dim * F32, bytesWritten: rows * spec.dim * F32, flops: 4 * rows * spec.dim }; }
    case 'slice': { const n = T * spec.rows * spec.len; return { bytesRead: n * F32, bytesWritten: n * F32, flops: 0 }; }
    case 'matmul': {
      const inputs = spec.prologue === 'silu_mul' || spec.prologue === 'gelu_mul' ? 2 : 1;
      const read = inputs * T * spec.K + (spec.prologue === 'rmsnorm' ? spec.K : 0) + (spec.bias ? spec.N : 0) + (spec.residual ? T * spec.N : 0);
      return { bytesRead: read * F32 + weightBytes(spec.wtype ?? 'f32', spec.K * spec.N), bytesWritten: T * spec.N * F32, flops: 2 * T * spec.K * spec.N + (spec.softcap !== undefined ? 3 * T * spec.N : 0) };
    }
    case 'rope': {
      // A normalising rope (fuseQkNorm) also reads its norm weight once and does rmsnorm's work.
      const n = T * spec.heads * spec.headDim, norm = spec.norm !== undefined;
      return { bytesRead: n * F32 + T * 4 + (norm ? spec.headDim * F32 : 0), bytesWritten: n * F32, flops: 6 * n + (norm ? 4 * n : 0) };
    }
    case 'kv_append': {
      const n = 2 * T * spec.kvHeads * spec.headDim;
      const norm = spec.norm !== undefined;
      return { bytesRead: n * F32 + T * 8 + (norm ? spec.headDim * F32 : 0), bytesWritten: T * tokenBytesPerLayer(spec), flops: (spec.rope === null ? 0 : 3 * n) + (norm ? 2 * n : 0) };
    }
    case 'attention': {
      // Reads the K/V of the span once per KV head (the query heads of a group share it),
      // plus the block-table entries of its pages.
      const span = keySpan(spec.window, T, context);
      const q = T * spec.heads * spec.headDim;
      const tables = 4 * (Math.ceil(span / spec.pageSize) + 3);
      const written = spec.splits === 1 ? q : T * spec.heads * spec.splits * (spec.headDim + 2);
      return { bytesRead: span * tokenBytesPerLayer(spec) + q * F32 + T * 8 + tables, bytesWritten: written * F32, flops: 4 * T * spec.heads * spec.headDim * span };
    }
    case 'attn_scores': case 'attn_values': {
      // Unfused: each query head reads the span's K (or V) rows itself (no group sharing), and
      // the [T, heads, context] scores / probabilities go through memory.
      const span = keySpan(spec.window, T, context);
      const rows = span * (tokenBytesPerLayer(spec) / 2) * (spec.heads / spec.kvHeads);
      const tables = 4 * (Math.ceil(span / spec.pageSize) + 3) + T * 8;
      const q = T * spec.heads * spec.headDim, p = T * spec.heads * spec.context;
      return spec.kind === 'attn_scores'
        ? { bytesRead: rows + q * F32 + tables, bytesWritten: p * F32, flops: 2 * T * spec.heads * spec.headDim * span }
        : { bytesRead: rows + p * F32 + tables, bytesWritten: q * F32, flops: 2 * T * spec.heads * spec.headDim * span };
    }
    case 'attention_merge': {
      const n = T * spec.heads * spec.headDim;
      return { bytesRead: T * spec.heads * spec.splits * (spec.headDim + 2) * F32, bytesWritten: n * F32, flops: 3 * n * spec.splits };
    }
    case 'elementwise': return { bytesRead: spec.inputs * T * spec.width * F32, bytesWritten: T * spec.width * F32, flops: T * spec.width };
    case 'moe_route': return spec.direct
      ? { bytesRead: T * spec.experts * F32, bytesWritten: T * spec.k * 2 * F32, flops: T * spec.experts * spec.k }
      : { bytesRead: (T * spec.K + spec.K * spec.experts) * F32, bytesWritten: T * spec.k * 2 * F32, flops: 2 * T * spec.K * spec.experts };
    case 'moe_combine': return { bytesRead: T * spec.k * (2 + spec.width) * F32, bytesWritten: T * spec.width * F32, flops: 2 * T * spec.k * spec.width };
    case 'softmax': { const n = T * (spec.rows ?? 1) * spec.width; return { bytesRead: n * F32, bytesWritten: n * F32, flops: 3 * n }; }
    // T = the rows asked for (one per sequence): each row of logits read once, one id written.
    case 'argmax': return { bytesRead: T * (spec.width * F32 + 4), bytesWritten: T * 4, flops: T * spec.width };
    case 'moe_experts': {
      // Weights: only chosen experts are read (see moe_experts.hbs), each once per
      // MOE_ROWS_PER_PASS of its rows: exactly k experts once for one token; for T tokens,
      // min(experts, T * k) experts under balanced routing, each ceil(rows / experts / P)
      // times (skewed routing reads the busiest experts more often).
      const rows = T * spec.k;
      const chosen = spec.dense ? spec.experts : Math.min(spec.experts, rows);
      const perExpert = spec.dense ? T : Math.ceil(rows / chosen);
      const passes = Math.ceil(perExpert / MOE_ROWS_PER_PASS);
      const input = spec.input === 'shared' || spec.input === 'swiglu' ? T * spec.K : spec.input === 'slot' ? rows * spec.K : 2 * rows * spec.K;
      const matrices = spec.input === 'swiglu' ? 2 : 1;
      const read = input + rows * 2 + (spec.residual ? T * spec.N : 0);
      // Block experts (wtype) read 34 / 18 bytes per 32 weights, f32 ones 4 per weight.
      const weights = passes * matrices * weightBytes(spec.wtype ?? 'f32', chosen * spec.K * spec.N);
      return { bytesRead: read * F32 + weights, bytesWritten: (spec.combine ? T : rows) * spec.N * F32, flops: 2 * matrices * rows * spec.K * spec.N };
    }
  }
}

/** The cost of one forward step of T tokens whose last token sits at position context-1. */
export function forwardCost(p: Program, T: number, context: number): ForwardCost {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const steps = p.steps.map((s) => {
    const spec = specs.get(s.kernel)!;
    return { label: s.label, kind: spec.kind, ...kernelCost(spec, T, context) };
  });
  const sum = (f: (s: StepCost) => number) => steps.reduce((a, s) => a + f(s), 0);
  return { tokens: T, context, dispatches: steps.length, bytesRead: sum((s) => s.bytesRead), bytesWritten: sum((s) => s.bytesWritten), flops: sum((s) => s.flops), steps };
}

/**
 * The least a decode step can read: every weight except the unused embedding rows
 * (one row per token), and the K/V of every cached position once.
 */
export function decodeMinimumBytes(p: Program, context: number): number {
  const m = p.model;
  const embedRows = p.params.find((q) => q.name === 'token_embd');
  const embedSaving = embedRows ? weightBytes(paramType(p, 'token_embd'), (m.vocab - 1) * m.dim) : 0;
  const window = m.kv.window === null ? context : Math.min(context, m.kv.window);
  return paramBytes(p) - embedSaving - unchosenExpertBytes(p) + kvCacheBytes(p, window);
}

/** Bytes of the expert weights a one-token step does not read: all but k of each MoE param's experts. */
export function unchosenExpertBytes(p: Program): number {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const seen = new Set<string>();
  let bytes = 0;
  for (const s of p.steps) {
    const spec = specs.get(s.kernel);
    if (spec?.kind !== 'moe_experts' || spec.dense) continue;
    for (const w of [s.args.w, s.args.w2]) {
      if (w === undefined || seen.has(w)) continue;
      seen.add(w);
      bytes += weightBytes(spec.wtype ?? 'f32', (spec.experts - spec.k) * spec.K * spec.N);
    }
  }
  return bytes;
}
