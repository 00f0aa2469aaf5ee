// Beyond one device: what splitting a decode step over G devices costs in communication,
// and the predicted step time over an interconnect. Counted from the Program:
//
// Tensor parallelism (Megatron-style): column-parallel q/k/v, gate/up; row-parallel
// attention output and FFN down projections, each of which ends in an all-reduce of the
// [T, dim] result. Those are the matmuls that add into the residual stream (`residual`
// in the fused Program; 2 per layer when that fusion is off). The vocabulary-parallel
// output projection ends in an all-gather of the logits. A ring all-reduce sends
// 2 (G - 1) / G of the buffer from each device; an all-gather (G - 1) / G.
//
// Expert parallelism: each MoE layer (one moe_route step each) sends every token's hidden
// state to its k experts' devices and brings their outputs back: 2 x k x dim values per
// token per layer, of which (G - 1) / G cross devices under balanced routing.
//
// Activations travel as f32 (infer's activation type). Communication is bandwidth only
// (no per-message latency) and does not overlap compute: the time is compute + transfer.
import type { Program } from '../../program/program.ts';
import type { InterconnectSpec } from './hardware.ts';
import { rooflineTime, type Roof, type StepTotals } from './step.ts';

const F32 = 4;

export interface ParallelReport {
  readonly devices: number;
  readonly mode: 'tp' | 'ep';
  readonly interconnect: string;
  /** Collective operations per decode step (all-reduces for tp, all-to-all pairs for ep). */
  readonly collectivesPerStep: number;
  /** Bytes each device sends per token. */
  readonly commBytesPerToken: number;
  readonly commSeconds: number;
  readonly computeSeconds: number;
  readonly stepSeconds: number;
  readonly tokensPerS: number;
  /** Against the same step on one device. */
  readonly speedup: number;
}

export class ParallelPlanError extends Error {}

/** Steps ending in a tensor-parallel all-reduce: the projections that add into the residual stream. */
export function allReducesPerToken(p: Program): number {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const n = p.steps.filter((s) => { const k = specs.get(s.kernel)!; return (k.kind === 'matmul' || k.kind === 'moe_experts') && k.residual; }).length;
  return n > 0 ? n : 2 * p.model.layers;
}

/** MoE layers (one routing step each) and their top-k. */
export function moeLayers(p: Program): { layers: number; k: number } {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  let layers = 0, k = 0;
  for (const s of p.steps) {
    const spec = specs.get(s.kernel)!;
    if (spec.kind === 'moe_route') { layers++; k = spec.k; }
  }
  return { layers, k };
}

export function parallelPlan(p: Program, step: StepTotals, o: { devices: number; mode: 'tp' | 'ep'; batch: number; link: InterconnectSpec; roof: Roof }): ParallelReport {
  const { devices: G, mode, batch: B, link, roof } = o;
  const m = p.model;
  const one = rooflineTime(step.bytesRead, step.flops, roof).seconds;
  let collectives: number, commBytesPerToken: number, compute: number;
  if (mode === 'tp') {
    collectives = allReducesPerToken(p);
    commBytesPerToken = collectives * (2 * (G - 1) / G) * m.dim * F32 + ((G - 1) / G) * m.vocab * F32;
    // Every weight and every KV head split G ways (heads permitting; the plan assumes they divide).
    compute = rooflineTime(step.bytesRead / G, step.flops / G, roof).seconds;
  } else {
    const moe = moeLayers(p);
    if (moe.layers === 0) throw new ParallelPlanError(`--parallel ep needs a mixture-of-experts model; ${m.name} has no moe layer (use --parallel tp)`);
    collectives = moe.layers;
    commBytesPerToken = moe.layers * 2 * moe.k * m.dim * F32 * ((G - 1) / G);
    // Experts split G ways; attention and the rest replicated, each device serving 1/G of the
    // sequences (so their weights are read on every device, their KV and FLOPs split).
    const rest = step.bytesRead - step.expertBytes;
    compute = rooflineTime(rest + step.expertBytes / G, step.flops / G, roof).seconds;
  }
  const commSeconds = (commBytesPerToken * B) / (link.gbsPerDirection * 1e9);
  const stepSeconds = compute + commSeconds;
  return {
    devices: G, mode, interconnect: link.name, collectivesPerStep: collectives, commBytesPerToken,
    commSeconds, computeSeconds: compute, stepSeconds, tokensPerS: B / stepSeconds, speedup: one / stepSeconds,
  };
}
