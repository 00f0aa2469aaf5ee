// `infer plan`: memory and speed of a compiled Program at a context, batch and device,
// before anything runs. Memory from the Program's buffers (memory.ts), bytes and FLOPs
// from its dispatch list (step.ts over compiler/cost.ts), time from the roofline of the
// named device (hardware.ts), plus speculative decoding and multi-device splits. The
// result is plain data with snake_case keys: `infer plan --json` prints it as it is.
import type { Program } from '../../program/program.ts';
import { findDevice, type DeviceSpec, type InterconnectSpec } from './hardware.ts';
import { memoryReport, type KvSaving } from './memory.ts';
import { parallelPlan, type ParallelReport } from './parallel.ts';
import { batchStepCost, prefillCost, ridgePoint, rooflineTime, speculative, type Roof, type SpeculativeReport } from './step.ts';

export class PlanError extends Error {}

/** A device by its table entry, or by the two figures a roofline needs. */
export interface PlanDevice { readonly name: string; readonly bandwidthGBs: number; readonly tflops: number; readonly source: string }

export const DEFAULT_DEVICE = 'h100';

export function tableDevice(d: DeviceSpec): PlanDevice {
  return { name: d.name, bandwidthGBs: d.bandwidthGBs, tflops: d.f32Tflops, source: 'table (peak bandwidth, f32 FLOP/s: infer kernels compute in f32)' };
}

export interface PlanOptions {
  readonly context?: number;
  readonly batch?: number;
  readonly tokensPerForward?: number;
  readonly device?: PlanDevice;
  readonly speculative?: { readonly lookahead: number; readonly acceptance: number; readonly draftName: string; readonly draft: Program | null };
  readonly parallel?: { readonly devices: number; readonly mode: 'tp' | 'ep'; readonly link: InterconnectSpec };
}

export interface Plan {
  readonly model: string;
  readonly device: { readonly name: string; readonly bandwidth_gb_s: number; readonly tflops: number; readonly source: string };
  readonly context: number;
  readonly batch: number;
  readonly tokens_per_forward: number;
  readonly weights_bytes: number;
  readonly active_weights_bytes_per_token: number;
  readonly kv_bytes_per_token: number;
  readonly kv_bytes_total: number;
  readonly kv_formula: string;
  readonly kv_bytes_per_value: number;
  readonly kv_pool: { readonly pages: number; readonly page_size: number; readonly bytes: number };
  readonly kv_savings: readonly KvSaving[];
  readonly activation_bytes: number;
  readonly device_bytes: number;
  readonly device_breakdown: Readonly<Record<string, number>>;
  readonly dispatches_per_step: number;
  readonly bytes_per_step: number;
  readonly bytes_written_per_step: number;
  readonly flops_per_step: number;
  readonly arithmetic_intensity: number;
  readonly ridge_flops_per_byte: number;
  readonly bottleneck: 'memory' | 'compute';
  readonly predicted_step_ms: number;
  readonly predicted_tokens_per_s: number;
  readonly prefill: {
    readonly tokens: number; readonly forwards: number; readonly bytes_per_token: number; readonly flops_per_token: number;
    readonly arithmetic_intensity: number; readonly bottleneck: 'memory' | 'compute'; readonly predicted_tokens_per_s: number;
  };
  readonly speculative: SpeculativeReport | null;
  readonly parallel: ParallelReport | null;
}

const positiveInt = (what: string, v: number): number => {
  if (!Number.isInteger(v) || v < 1) throw new PlanError(`${what} must be an integer >= 1, got ${v}`);
  return v;
};

export function buildPlan(p: Program, o: PlanOptions = {}): Plan {
  const m = p.model;
  const context = positiveInt('context', o.context ?? m.maxContext);
  if (context > m.maxContext) throw new PlanError(`context ${context} exceeds ${m.name}'s max_context of ${m.maxContext}`);
  const batch = positiveInt('batch', o.batch ?? 1);
  const tokensPerForward = positiveInt('tokens per forward', o.tokensPerForward ?? m.maxContext);
  const device = o.device ?? tableDevice(findDevice(DEFAULT_DEVICE)!);
  const roof: Roof = { bandwidth: device.bandwidthGBs * 1e9, flops: device.tflops * 1e12 };
  if (!(roof.bandwidth > 0) || !(roof.flops > 0)) throw new PlanError('the device needs a bandwidth and a FLOP/s rate above 0');

  const mem = memoryReport(p, { context, batch, tokensPerForward });
  // Decode: every sequence's next token at the last position of its context.
  const step = batchStepCost(p, batch, 1, context);
  const t = rooflineTime(step.bytesRead, step.flops, roof);
  const pre = prefillCost(p, context, Math.min(tokensPerForward, context));
  const pt = rooflineTime(pre.bytesRead, pre.flops, roof);
  const spec = o.speculative;
  if (spec && (!Number.isInteger(spec.lookahead) || spec.lookahead < 1)) throw new PlanError(`lookahead must be an integer >= 1, got ${spec.lookahead}`);
  if (spec && !(spec.acceptance >= 0 && spec.acceptance <= 1)) throw new PlanError(`acceptance must be in 0..1, got ${spec.acceptance}`);
  const par = o.parallel;
  if (par && (!Number.isInteger(par.devices) || par.devices < 1)) throw new PlanError(`devices must be an integer >= 1, got ${par.devices}`);
  return {
    model: m.name,
    device: { name: device.name, bandwidth_gb_s: device.bandwidthGBs, tflops: device.tflops, source: device.source },
    context, batch, tokens_per_forward: tokensPerForward,
    weights_bytes: mem.weightsBytes,
    active_weights_bytes_per_token: mem.activeWeightsBytesPerToken,
    kv_bytes_per_token: mem.kvBytesPerToken,
    kv_bytes_total: mem.kvBytesTotal,
    kv_formula: mem.kvFormula,
    kv_bytes_per_value: mem.kvBytesPerValue,
    kv_pool: { pages: mem.kvPool.pages, page_size: mem.kvPool.pageSize, bytes: mem.kvPool.bytes },
    kv_savings: mem.kvSavings,
    activation_bytes: mem.activationBytes,
    device_bytes: mem.deviceBytes,
    device_breakdown: mem.deviceBreakdown,
    dispatches_per_step: step.dispatches,
    bytes_per_step: step.bytesRead,
    bytes_written_per_step: step.bytesWritten,
    flops_per_step: step.flops,
    arithmetic_intensity: t.intensity,
    ridge_flops_per_byte: ridgePoint(roof),
    bottleneck: t.bottleneck,
    predicted_step_ms: t.seconds * 1e3,
    predicted_tokens_per_s: batch / t.seconds,
    prefill: {
      tokens: context, forwards: pre.forwards, bytes_per_token: pre.bytesRead / context, flops_per_token: pre.flops / context,
      arithmetic_intensity: pt.intensity, bottleneck: pt.bottleneck, predicted_tokens_per_s: context / pt.seconds,
    },
    speculative: spec ? speculative(p, { name: spec.draftName, program: spec.draft }, { batch, context, lookahead: spec.lookahead, acceptance: spec.acceptance, roof }) : null,
    parallel: par ? parallelPlan(p, step, { devices: par.devices, mode: par.mode, batch, link: par.link, roof }) : null,
  };
}
