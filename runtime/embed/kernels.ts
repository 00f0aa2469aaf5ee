// The kernels a generated module carries: every kernel of its Program rendered ahead of
// time for both tuning targets (a GPU, and a software adapter such as lavapipe or
// SwiftShader, which the runtime tells apart at device creation). A Backend over them
// lets the ProgramRunner run a generated module with no template engine at run time.
import { GPU_TARGET, type Backend, type RenderedKernel, type Target } from '../../backends/backend.ts';
import type { KernelSpec } from '../../program/kernels.ts';

export type KernelVariants = Readonly<Record<string, readonly RenderedKernel[]>>;

/** Rendered variants by kernel key, per target kind. */
export interface EmbeddedKernels {
  readonly gpu: KernelVariants;
  readonly cpu: KernelVariants;
}

export class MissingKernelError extends Error {}

export class EmbeddedBackend implements Backend {
  readonly name = 'wgsl';
  constructor(private readonly kernels: EmbeddedKernels) {}

  render(key: string, _spec: KernelSpec, target: Target = GPU_TARGET): RenderedKernel[] {
    const variants = Object.hasOwn(this.kernels[target.kind], key) ? this.kernels[target.kind][key] : undefined;
    if (!variants || variants.length === 0) {
      throw new MissingKernelError(`the generated module has no kernel '${key}' for the ${target.kind} target: regenerate it with infer compile --target ts`);
    }
    return [...variants];
  }
}
