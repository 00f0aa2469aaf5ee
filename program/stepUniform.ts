// The step uniform: the one value the runtime hands every kernel per forward, the number
// of tokens T in this step (kernels size their loops and guards by it; the grid is sized
// from it on the host). Four u32 fields because uniform buffers bind in 16-byte units.
// The WGSL and CUDA headers declare `struct Step` from STEP_UNIFORM_FIELDS, and the
// runtime writes packStepUniform(T): one definition for both sides of the Program.

/** Field names of `struct Step`, in order; every field is a u32. */
export const STEP_UNIFORM_FIELDS = ['tokens', 'pad0', 'pad1', 'pad2'] as const;
/** Bytes of the step uniform. */
export const STEP_UNIFORM_BYTES = 4 * STEP_UNIFORM_FIELDS.length;
/** The binding name of the step uniform, after a kernel's storage bindings. */
export const STEP_BINDING = 'step';

/** The uniform's bytes for a step of `tokens` tokens. */
export function packStepUniform(tokens: number): Uint32Array {
  const out = new Uint32Array(STEP_UNIFORM_FIELDS.length);
  out[0] = tokens;
  return out;
}
