// The backend interface: a small adapter from a backend-neutral KernelSpec to
// source text. Everything here is JSON-serialisable so it can go in manifest.json.
import type { KernelSpec } from '../program/kernels.ts';

/**
 * One grid dimension: ceil(T / tokensPerGroup) * groups when tokensPerGroup > 0, else groups.
 * T is the number of tokens in the step, known only at dispatch time.
 */
export interface GridDim { readonly tokensPerGroup: number; readonly groups: number }

export interface RenderedBinding {
  readonly name: string;
  /** `uniform` is the runtime's step uniform (struct { tokens: u32 }); the rest are storage buffers. */
  readonly access: 'read' | 'read_write' | 'uniform';
}

export interface RenderedKernel {
  readonly key: string;
  readonly source: string;
  readonly entry: string;
  /** In binding order (group 0, binding i). */
  readonly bindings: readonly RenderedBinding[];
  readonly workgroup: readonly [number, number, number];
  readonly grid: readonly [GridDim, GridDim, GridDim];
  /** Use this variant when the step has at least this many tokens (the runtime picks the largest that fits). */
  readonly minTokens: number;
}

/**
 * What a backend may tune a kernel's layout for; never what the kernel computes. A GPU
 * wants lanes that read coalesced segments; a software rasteriser on the CPU (lavapipe,
 * SwiftShader: a WebGPU "fallback adapter") runs a workgroup's invocations as SIMD loops,
 * where an invocation that streams one contiguous weight row is fastest and every
 * reduction barrier costs a pass over the whole workgroup.
 */
export interface Target {
  readonly kind: 'gpu' | 'cpu';
  /**
   * The device has WebGPU's shader-f16 feature: f16 weights are read as f16 (else as
   * u32 pairs unpacked with unpack2x16float; the values are the same either way).
   */
  readonly f16?: boolean;
  /**
   * The device has WebGPU's subgroups feature with one fixed subgroup size (adapter
   * subgroupMinSize == subgroupMaxSize): kernels may exchange values between lanes with
   * subgroupBroadcast. On a CPU target the subgroup is the SIMD vector of the JIT-compiled
   * workgroup (lavapipe: 8 lanes of 256 bits). Absent: no kernel uses subgroups.
   */
  readonly subgroupSize?: number;
}
export const GPU_TARGET: Target = { kind: 'gpu' };
export const CPU_TARGET: Target = { kind: 'cpu' };

export interface Backend {
  readonly name: 'wgsl' | 'cuda';
  /** One or more variants of a kernel (e.g. a GEMV for decode and a tiled matmul for prefill), tuned for `target` (default GPU). */
  render(key: string, spec: KernelSpec, target?: Target): RenderedKernel[];
}

export function gridFor(grid: readonly [GridDim, GridDim, GridDim], tokens: number): [number, number, number] {
  const dim = (g: GridDim) => (g.tokensPerGroup > 0 ? Math.ceil(tokens / g.tokensPerGroup) : 1) * g.groups;
  return [dim(grid[0]), dim(grid[1]), dim(grid[2])];
}

export function pickVariant(variants: readonly RenderedKernel[], tokens: number): RenderedKernel {
  let best: RenderedKernel | undefined;
  for (const v of variants) if (v.minTokens <= tokens && (!best || v.minTokens > best.minTokens)) best = v;
  if (!best) throw new Error(`no kernel variant of ${variants[0]?.key} accepts ${tokens} tokens`);
  return best;
}
