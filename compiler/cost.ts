// What a step costs, derived from the Program alone: bytes each dispatch moves,
// FLOPs, the KV-cache formula, and the analytic minimum a decode step must read
// (every weight once, the live KV once). Benchmarks report measured figures
// against these numbers.
import type { KernelSpec, Program } from './program.ts';

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

/** KV-cache bytes: 2 x layers x kv_heads x head_dim x seq_len x batch x bytes_per_value. */
export function kvCacheBytes(p: Program, seqLen: number, batch = 1, bytesPerValue = F32): number {
  const m = p.model;
  return 2 * m.layers * m.kvHeads * m.headDim * seqLen * batch * bytesPerValue;
}

export function paramBytes(p: Program): number {
  return p.params.reduce((sum, q) => sum + q.shape.reduce((a, b) => a * b, 1) * F32, 0);
}

/** Bytes one dispatch of `spec` reads and writes, and its FLOPs, for T tokens whose last position is context-1. */
export function kernelCost(spec: KernelSpec, T: number, context: number): Omit<StepCost, 'label' | 'kind'> {
  switch (spec.kind) {
    case 'embed': return { bytesRead: T * (4 + spec.dim * F32), bytesWritten: T * spec.dim * F32, flops: 0 };
    case 'rmsnorm': return { bytesRead: (T + 1) * spec.dim * F32, bytesWritten: T * spec.dim * F32, flops: 4 * T * spec.dim };
    case 'matmul': {
      const inputs = spec.prologue === 'silu_mul' ? 2 : 1;
      const read = spec.K * spec.N + inputs * T * spec.K + (spec.prologue === 'rmsnorm' ? spec.K : 0) + (spec.residual ? T * spec.N : 0);
      return { bytesRead: read * F32, bytesWritten: T * spec.N * F32, flops: 2 * T * spec.K * spec.N };
    }
    case 'rope': { const n = T * spec.heads * spec.headDim; return { bytesRead: n * F32 + T * 4, bytesWritten: n * F32, flops: 6 * n }; }
    case 'kv_store': { const n = 2 * T * spec.kvHeads * spec.headDim; return { bytesRead: n * F32 + T * 4, bytesWritten: n * F32, flops: 0 }; }
    case 'attention': {
      const span = spec.window === null ? context : Math.min(context, spec.window + T - 1);
      const kv = 2 * span * spec.kvHeads * spec.headDim;
      const q = T * spec.heads * spec.headDim;
      return { bytesRead: (kv + q) * F32 + T * 4, bytesWritten: q * F32, flops: 4 * T * spec.heads * spec.headDim * span };
    }
    case 'elementwise': return { bytesRead: spec.inputs * T * spec.width * F32, bytesWritten: T * spec.width * F32, flops: T * spec.width };
    case 'moe_route': return spec.direct
      ? { bytesRead: T * spec.experts * F32, bytesWritten: T * spec.k * 2 * F32, flops: T * spec.experts * spec.k }
      : { bytesRead: (T * spec.K + spec.K * spec.experts) * F32, bytesWritten: T * spec.k * 2 * F32, flops: 2 * T * spec.K * spec.experts };
    case 'moe_combine': return { bytesRead: T * spec.k * (2 + spec.width) * F32, bytesWritten: T * spec.width * F32, flops: 2 * T * spec.k * spec.width };
    case 'softmax': return { bytesRead: T * spec.width * F32, bytesWritten: T * spec.width * F32, flops: 3 * T * spec.width };
    case 'moe_experts': {
      // Weights: only chosen experts are read, each once per step (see moe_experts.hbs):
      // exactly k experts for one token, at most min(experts, T * k) for T tokens.
      const chosen = spec.dense ? spec.experts : Math.min(spec.experts, T * spec.k);
      const rows = T * spec.k;
      const input = spec.input === 'shared' || spec.input === 'swiglu' ? T * spec.K : spec.input === 'slot' ? rows * spec.K : 2 * rows * spec.K;
      const matrices = spec.input === 'swiglu' ? 2 : 1;
      const read = matrices * chosen * spec.K * spec.N + input + rows * 2 + (spec.residual ? T * spec.N : 0);
      return { bytesRead: read * F32, bytesWritten: (spec.combine ? T : rows) * spec.N * F32, flops: 2 * matrices * rows * spec.K * spec.N };
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
  const embedSaving = embedRows ? (m.vocab - 1) * m.dim * F32 : 0;
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
      bytes += (spec.experts - spec.k) * spec.K * spec.N * F32;
    }
  }
  return bytes;
}
