// Kernel variants on a Device: every kernel of a Program rendered by its backend for the
// device's target and compiled once, and the choice of variant and grid per step.
import { gridFor, pickVariant, type Backend, type RenderedKernel, type Target } from '../../backends/backend.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import type { Program } from '../../program/program.ts';
import { DeviceError, type Device, type DeviceKernel } from './device.ts';

export interface CompiledKernel { readonly key: string; readonly spec: KernelSpec; readonly variants: readonly DeviceKernel[] }

/** Renders and compiles every kernel of the program (devices cache compiled sources). */
export async function compileProgramKernels(device: Device, program: Program, backend: Backend, target: Target = device.target): Promise<Map<string, CompiledKernel>> {
  const out = new Map<string, CompiledKernel>();
  for (const { key, spec } of program.kernels) {
    const rendered = backend.render(key, spec, target);
    if (rendered.length === 0) throw new DeviceError(`backend ${backend.name} rendered no variant of kernel ${key}`);
    const variants: DeviceKernel[] = [];
    for (const r of rendered) variants.push(await device.compile(r));
    out.set(key, { key, spec, variants });
  }
  return out;
}

/** The variant a step of T tokens uses (the largest minTokens that fits) and its index. */
export function chooseVariant(k: CompiledKernel, T: number): number {
  const chosen: RenderedKernel = pickVariant(k.variants.map((v) => v.rendered), T);
  return k.variants.findIndex((v) => v.rendered === chosen);
}

/** The grid of a variant for T tokens, checked against the device's per-dimension limit. */
export function checkedGrid(v: DeviceKernel, T: number, maxGroupsPerDim: number): [number, number, number] {
  const grid = gridFor(v.rendered.grid, T);
  if (grid.some((g) => g < 1 || g > maxGroupsPerDim)) {
    throw new DeviceError(`kernel ${v.rendered.key} needs a grid of ${grid.join('x')} for ${T} tokens; the device allows 1..${maxGroupsPerDim} groups per dimension`);
  }
  return grid;
}

/**
 * The device's greedy sampler over rows of `vocab` logits (program/kernels.ts argmax), or
 * null where the backend renders none (the runner then samples on the host).
 */
export async function compileArgmax(device: Device, backend: Backend, vocab: number, target: Target = device.target): Promise<CompiledKernel | null> {
  const spec: KernelSpec = { kind: 'argmax', width: vocab };
  const key = kernelKey(spec);
  let rendered: RenderedKernel[];
  try { rendered = backend.render(key, spec, target); } catch { return null; }
  if (rendered.length === 0) return null;
  return { key, spec, variants: [await device.compile(rendered[0])] };
}
