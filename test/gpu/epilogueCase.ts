// One matmul-epilogue case (bias, softcap, residual after any prologue, any weight format, a
// column part of a split weight), its interpreter answer and the check of a kernel's output,
// shared by the WebGPU test (epilogueKernels.test.ts) and the CUDA emulation test
// (test/cuda/matmul.test.ts).
//
// The check is an f32 error bound per output element (u = 2^-24), with B = sum_k |a_k w_k|
// (a the prologue's exact output, w the exact weights the device holds: dequantisation is
// exact in f32, compactKernels.test.ts): the dot product in any order is within K u B; the
// prologue's own rounding perturbs each a_k by at most (K + 64) u relative (rmsnorm's sum of K
// squares, its sqrt and division; silu's exp, 3 + 2|x| ulp for |x| <= 3; gelu's tanh near
// gelu's zero); each add of the epilogue rounds once (u (|y| + |b|), u (|y| + |res|)); soft-
// capping is 1-Lipschitz in y and adds the division's u |y|, tanh's absolute error (at most
// 8 u: WGSL's tanh is (e^2a - 1) / (e^2a + 1), whose numerator cancels) times the cap, and
// the product's u cap. The bound is that sum, doubled for the terms first-order analysis drops.
import { expect } from 'vitest';
import type { Node } from '../../compiler/ir/index.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import { blockElements, type CompactType } from '../../program/quant.ts';
import { blockWeights, data, oracle, type Prologue } from './harness.ts';

const U = 2 ** -24;

export const EPILOGUE_FORMATS: readonly ('f32' | CompactType)[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_K'];

export interface EpilogueDraw {
  readonly format: 'f32' | CompactType;
  /** Picks K: any for f32 (vec4 and scalar rows), whole blocks for compact formats. */
  readonly units: number;
  readonly N: number;
  readonly T: number;
  readonly prologue: Prologue;
  readonly bias: boolean;
  readonly softcap: number | undefined;
  readonly residual: boolean;
  /** A column part: `before` columns left of it and `after` right of it in the output rows. */
  readonly part: { before: number; after: number } | undefined;
  readonly next: () => number;
}

export function epilogueCase(c: EpilogueDraw) {
  const { format, N, T, prologue, bias, softcap, residual, part, next } = c;
  const K = format === 'f32' ? c.units : format === 'f16' ? 4 * Math.ceil(c.units / 4) : blockElements(format) * (1 + (c.units % (format === 'q4_K' ? 2 : 8)));
  const colOffset = part?.before ?? 0, outCols = colOffset + N + (part?.after ?? 0);
  const w = format === 'f32' ? (() => { const v = data(next, K * N, 1 / Math.sqrt(K)); return { packed: v, values: v }; })() : blockWeights(format, next, K * N, 1 / Math.sqrt(K));
  const srcNames = prologue === 'none' ? ['x'] : prologue === 'rmsnorm' ? ['x', 'norm'] : ['gate', 'up'];
  const inputs: Record<string, Float32Array | Uint32Array> = { w: w.packed };
  const params: Record<string, Float32Array> = { w: w.values };
  for (const name of srcNames) params[name] = inputs[name] = data(next, name === 'norm' ? K : T * K, name === 'x' ? 2 : name === 'gate' ? 3 : 1);
  // Whole rows of outCols for the bias and residual (the kernel reads columns colOffset + n);
  // biases of several units, so the cap bends the sums.
  const biasRow = data(next, outCols, 2), resRows = data(next, T * outCols);
  if (bias) inputs.bias = biasRow;
  if (residual) inputs.res = resRows;
  params.b = biasRow.slice(colOffset, colOffset + N);
  params.r = Float32Array.from({ length: T * N }, (_, i) => resRows[Math.floor(i / N) * outCols + colOffset + (i % N)]);
  const arg = { prologue, eps: 1e-5, residual, ...(bias ? { bias: true as const } : {}), ...(softcap !== undefined ? { softcap } : {}) };
  const one = { params, tokens: new Int32Array(T), positions: new Int32Array(T) };
  const want = oracle(one, (b, p) => {
    const src: Node[] = srcNames.map((n) => p(n, n === 'norm' ? [K] : [T, K]));
    src.push(p('w', [K, N]));
    if (bias) src.push(p('b', [N]));
    if (residual) src.push(p('r', [T, N]));
    return b.node('fused_matmul', arg, src);
  });
  // The prologue's exact output, for the bound's B.
  const a = prologue === 'none' ? params.x : oracle(one, (b, p) => prologue === 'rmsnorm'
    ? b.node('rmsnorm', { eps: 1e-5 }, [p('x', [T, K]), p('norm', [K])])
    : b.node('binary', { fn: 'mul' }, [b.node('unary', { fn: prologue === 'silu_mul' ? 'silu' : 'gelu' }, [p('gate', [T, K])]), p('up', [T, K])]));
  const spec: KernelSpec = { kind: 'matmul', K, N, ...arg, ...(format === 'f32' ? {} : { wtype: format }), ...(part ? { colOffset, outCols } : {}) };
  const label = `${format} ${prologue}${bias ? ' bias' : ''}${softcap ? ` softcap ${softcap}` : ''}${residual ? ' residual' : ''} K=${K} N=${N} T=${T} cols ${colOffset}+${N}/${outCols}`;
  return { c, K, colOffset, outCols, spec, inputs, params, want, a, weights: w.values, label };
}

/** `got` (T rows of outCols, zero-initialised) holds the case's answer in its columns, within the bound, and zeros elsewhere. */
export function expectEpilogue(e: ReturnType<typeof epilogueCase>, got: Float32Array, what: string): void {
  const { K, colOffset, outCols, want, a, weights, params } = e;
  const { N, T, bias, softcap, residual } = e.c;
  for (let t = 0; t < T; t++) {
    for (let col = 0; col < outCols; col++) {
      const g = got[t * outCols + col], n = col - colOffset;
      if (n < 0 || n >= N) { expect(g, `${what}: column ${col} outside the part was written`).toBe(0); continue; }
      let B = 0, y = 0;
      for (let k = 0; k < K; k++) { B += Math.abs(a[t * K + k] * weights[n * K + k]); y += a[t * K + k] * weights[n * K + k]; }
      const yb = Math.abs(y) + (bias ? Math.abs(params.b[n]) : 0);
      const capped = softcap !== undefined ? U * yb + 8 * U * softcap + U * softcap : 0;
      const bound = 2 * ((2 * K + 64) * U * B + U * yb + capped + (residual ? U * (Math.abs(want[t * N + n]) + Math.abs(params.r[t * N + n])) : 0));
      const d = Math.abs(g - want[t * N + n]);
      if (!(d <= bound)) throw new Error(`${what}: [${t}, ${n}] got ${g}, interpreter ${want[t * N + n]}, |diff| ${d} > bound ${bound}`);
      if (softcap !== undefined && !residual) expect(Math.abs(g), `${what}: [${t}, ${n}] past the cap`).toBeLessThanOrEqual(softcap);
    }
  }
}
