// The step uniform: what the runtime hands every kernel per forward: the number of tokens T
// in this step (kernels size their loops and guards by it; the grid is sized from it on the
// host), and `part`, the first column (matmul) or vocabulary id (embed) of the weight part a
// dispatch over a split param reads (compiler/splitParams.ts; 0 for every other dispatch), so
// that a param's equal parts share one compiled kernel instead of one each. Four u32 fields
// because uniform buffers bind in 16-byte units.
// The WGSL and CUDA headers declare `struct Step` from STEP_UNIFORM_FIELDS, and the
// runtime writes packStepUniform(T, part): one definition for both sides of the Program.
import type { KernelSpec } from './kernels.ts';

/** Field names of `struct Step`, in order; every field is a u32. */
export const STEP_UNIFORM_FIELDS = ['tokens', 'part', 'pad1', 'pad2'] as const;
/** Bytes of the step uniform. */
export const STEP_UNIFORM_BYTES = 4 * STEP_UNIFORM_FIELDS.length;
/** The binding name of the step uniform, after a kernel's storage bindings. */
export const STEP_BINDING = 'step';

/** The uniform's bytes for a step of `tokens` tokens, for a dispatch reading the weight part that starts at `part`. */
export function packStepUniform(tokens: number, part = 0): Uint32Array {
  const out = new Uint32Array(STEP_UNIFORM_FIELDS.length);
  out[0] = tokens;
  out[1] = part;
  return out;
}

/** The step uniform's `part` for a dispatch of `spec`: a split weight's first column or a split table's first id, else 0. */
export function stepPart(spec: KernelSpec): number {
  return spec.kind === 'matmul' ? spec.colOffset ?? 0 : spec.kind === 'embed' ? spec.idOffset ?? 0 : 0;
}
