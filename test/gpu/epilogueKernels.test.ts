// The matmul epilogue (fuseBias.ts, fuseSoftcap.ts): y + bias[n], then softcap * tanh(y / softcap),
// then + res, on WebGPU against the float64 interpreter's fused_matmul. fast-check draws every
// kernel variant (GEMV, 4-token GEMV, tiled; GPU and CPU targets), the prologue, the weight
// format (f32, f16 as u32 pairs, q8_0, q4_0, q4_K), the epilogue's parts and a column part of a
// split weight (colOffset / outCols: the part reads the bias of its own columns and writes only
// those columns of the shared output rows).
//
// Tolerance, from f32 error bounds (u = 2^-24) per output element, with B = sum_k |a_k w_k|
// (a the prologue's exact output, w the exact weights the device holds: dequantisation is
// exact in f32, compactKernels.test.ts): the dot product in any order is within K u B; the
// prologue's own rounding perturbs each a_k by at most (K + 64) u relative (rmsnorm's sum of K
// squares and its sqrt and division; silu's exp, 3 + 2|x| ulp for |x| <= 2); each add of the
// epilogue rounds once (u (|y| + |b|), u (|y| + |res|)), and soft-capping is 1-Lipschitz in y
// and adds the division's u |y| and tanh's absolute error (at most 8 u: WGSL's tanh is
// (e^2a - 1) / (e^2a + 1), whose numerator cancels), times the cap. The bound is that sum,
// doubled for the terms dropped from first-order analysis.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { KernelSpec } from '../../program/kernels.ts';
import { blockElements, type CompactType } from '../../program/quant.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { CPU_TARGET, GPU_TARGET } from '../../backends/backend.ts';
import type { Node } from '../../compiler/ir/index.ts';
import { blockWeights, data, gpuProp, oracle, rng, runOnGpu, seedArb, variants, type Prologue } from './harness.ts';

const U = 2 ** -24;
const RUNS = Number(process.env.INFER_GPU_RUNS ?? 8);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const FORMATS: readonly ('f32' | CompactType)[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_K'];

const caseArb = fc.record({
  format: fc.constantFrom(...FORMATS), units: fc.integer({ min: 1, max: 200 }), N: fc.integer({ min: 1, max: 80 }),
  variant: fc.constantFrom('gemv', 'gemv4', 'tiled'), T: fc.integer({ min: 1, max: 40 }), prologue: fc.constantFrom<Prologue>('none', 'rmsnorm', 'silu_mul', 'gelu_mul'),
  // At least one of bias and softcap: the epilogue under test.
  bias: fc.boolean(), softcap: fc.option(fc.constantFrom(0.5, 3, 30), { nil: undefined }), residual: fc.boolean(),
  part: fc.option(fc.record({ before: fc.integer({ min: 1, max: 20 }), after: fc.integer({ min: 0, max: 20 }) }), { nil: undefined }),
  cpu: fc.boolean(), seed: seedArb,
}).filter((c) => c.bias || c.softcap !== undefined);

it('matmul with the bias / softcap epilogue (every variant, prologue, weight format, split part)', () => gpuProp(caseArb, async (c) => {
  const { format, N, variant, T, prologue, bias, softcap, residual, part, cpu } = c;
  // K: any for f32 (vec4 and scalar rows), whole blocks for compact formats (at most 2 q4_K blocks).
  const K = format === 'f32' ? c.units : format === 'f16' ? 4 * Math.ceil(c.units / 4) : blockElements(format) * (1 + (c.units % (format === 'q4_K' ? 2 : 8)));
  const colOffset = part?.before ?? 0, outCols = colOffset + N + (part?.after ?? 0);
  const next = rng(c.seed);
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
  const rendered = variants(spec, cpu ? CPU_TARGET : GPU_TARGET).get(variant)!;
  const got = (await runOnGpu(device, rendered, T, inputs, { out: T * outCols })).out;
  const what = `${format} ${variant} ${prologue}${bias ? ' bias' : ''}${softcap ? ` softcap ${softcap}` : ''}${residual ? ' residual' : ''} K=${K} N=${N} T=${T} cols ${colOffset}+${N}/${outCols}`;
  for (let t = 0; t < T; t++) {
    for (let col = 0; col < outCols; col++) {
      const g = got[t * outCols + col], n = col - colOffset;
      if (n < 0 || n >= N) { expect(g, `${what}: column ${col} outside the part was written`).toBe(0); continue; }
      let B = 0, y = 0;
      for (let k = 0; k < K; k++) { B += Math.abs(a[t * K + k] * w.values[n * K + k]); y += a[t * K + k] * w.values[n * K + k]; }
      const yb = Math.abs(y) + (bias ? Math.abs(params.b[n]) : 0);
      const bound = 2 * ((2 * K + 64) * U * B + U * yb + (softcap !== undefined ? U * yb + 8 * U * softcap + U * softcap : 0)
        + (residual ? U * (Math.abs(want[t * N + n]) + Math.abs(params.r[t * N + n])) : 0));
      const d = Math.abs(g - want[t * N + n]);
      if (!(d <= bound)) throw new Error(`${what}: [${t}, ${n}] gpu ${g}, cpu ${want[t * N + n]}, |diff| ${d} > bound ${bound}`);
    }
  }
  if (softcap !== undefined && !residual) for (let i = 0; i < want.length; i++) expect(Math.abs(got[Math.floor(i / N) * outCols + colOffset + (i % N)])).toBeLessThanOrEqual(softcap);
}, RUNS));
