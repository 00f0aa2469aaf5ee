// The check of a kernel with Qwen3's per-head norm folded in (rope or kv_append with `norm`),
// shared by the WebGPU test (qkNormKernels.test.ts) and the CUDA emulation test
// (test/cuda/kernels.test.ts).
//
// Tolerance, from stated f32 error bounds per output element (u = 2^-24), with n0, n1 the
// exact normalised pair an output is rotated from: the norm perturbs each n by (D + 16) u
// relative (a sum of D squares, sqrt, division, two products); WGSL's cos and sin are within
// 2^-11 absolute on [-pi, pi] (the kernels range-reduce into it; CUDA's are far closer),
// which bounds the rotation's error by 2^-11 (|n0| + |n1|), plus 4 u (|n0| + |n1|) for its products and sum. The check
// doubles that sum for the terms first-order analysis drops.
import { expect } from 'vitest';

const U = 2 ** -24;

/** Rows of x [T, H, D] normalised by w in float64: the n of the bound. */
export function normalised(x: Float32Array, w: Float32Array, D: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[r * D + d] ** 2;
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] * inv * w[d];
  }
  return out;
}

/** |got - want| within the bound at every element; `rotated` false: the norm alone (no sin/cos). */
export function expectWithinBound(got: ArrayLike<number>, want: ArrayLike<number>, n: Float64Array, D: number, neox: boolean, rotated: boolean, what: string): void {
  expect(got.length).toBe(want.length);
  for (let e = 0; e < want.length; e++) {
    const d = e % D, row = e - d, half = D / 2;
    const partner = neox ? row + (d < half ? d + half : d - half) : row + (d ^ 1);
    const pair = Math.abs(n[e]) + Math.abs(n[partner]);
    const bound = 2 * ((D + 16) * U * pair + (rotated ? (2 ** -11 + 4 * U) * pair : U * Math.abs(n[e])));
    const diff = Math.abs(got[e] - want[e]);
    if (!(diff <= bound)) throw new Error(`${what}: element ${e}: gpu ${got[e]}, interpreter ${want[e]}, |diff| ${diff} > bound ${bound}`);
  }
}
