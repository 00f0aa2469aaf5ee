// Every kernel of a Program rendered for both tuning targets, for a module that must run on
// whichever adapter it meets (a GPU, or a software one such as lavapipe or SwiftShader).
import type { Program } from '../../program/program.ts';
import { CPU_TARGET, GPU_TARGET, type Backend, type RenderedKernel } from '../backend.ts';

export interface KernelsByTarget {
  readonly gpu: ReadonlyMap<string, readonly RenderedKernel[]>;
  readonly cpu: ReadonlyMap<string, readonly RenderedKernel[]>;
}

export function renderForTargets(backend: Backend, program: Program): KernelsByTarget {
  const render = (target: typeof GPU_TARGET) => new Map(program.kernels.map(({ key, spec }) => [key, backend.render(key, spec, target)] as const));
  return { gpu: render(GPU_TARGET), cpu: render(CPU_TARGET) };
}
