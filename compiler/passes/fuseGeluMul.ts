// gelu(gate) * up -> matmul (Gemma's gated-GELU down projection) becomes one matmul whose
// prologue computes gelu(gate) * up on the fly: the SwiGLU fusion (fuseSiluMul.ts) with
// GELU (tanh approximation) as the gate. `--no-fuse gelu_mul` keeps them apart.
import { gatedPrologue } from './fuseSiluMul.ts';

export const fuseGeluMul = gatedPrologue('gelu', 'fuseGeluMul', 'fold gelu(gate) * up into the prologue of the matmul that consumes it');
