// Helpers for the GPU kernel tests: seeded data, one-op graphs run on the IR
// interpreter (the oracle), one kernel run on the device, and the comparison.
import fc from 'fast-check';
import { expect } from 'vitest';
import { CpuKvCache, GraphBuilder, interpret, type Node } from '../../compiler/ir/index.ts';
import { type ModelInfo } from '../../program/model.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import { kernelKey } from '../../program/kernels.ts';
import { GPU_TARGET, type RenderedKernel, type Target } from '../../backends/backend.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import type { CompactType } from '../../program/quant.ts';
import { dequantize, quantize } from '../../runtime/weights/ggufQuant.ts';
import { packBlocks, packHalves } from '../../program/quant.ts';
import { readBuffer, runKernel, storageBuffer, zeroBuffer } from '../../runtime/webgpu/device.ts';

/** mulberry32 (bench/fixtures/rng.ts), so a failing fast-check seed reproduces its data too. */
export { mulberry32 as rng } from '../../bench/fixtures/rng.ts';

/** n f32 values in +-[0.1, 1) * scale: non-zero, so a kernel that skips a term shows. */
export function data(next: () => number, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => {
    const v = (0.1 + 0.9 * next()) * scale;
    return next() < 0.5 ? -v : v;
  });
}

const MODEL: ModelInfo = {
  name: 'one-op', vocab: 1, dim: 1, layers: 1, heads: 1, kvHeads: 1, headDim: 1, maxContext: 1, eos: null,
  kv: { layout: { kind: 'contiguous' }, dtype: 'f32', window: null }, weights: { binding: 'random', seed: 0 }, constants: {},
};

export interface OneOp {
  /** Tensors by param name (activations are params of fixed shape [T, ...] here). */
  readonly params: Record<string, Float32Array>;
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  /** A CPU cache to run against (prefilled by the caller); default: a tiny empty one. */
  readonly kv?: CpuKvCache;
}

/** Builds a one-op graph with `build` and returns the value of the node it returns. */
export function oracle(inp: OneOp, build: (b: GraphBuilder, p: (name: string, shape: number[]) => Node) => Node): Float64Array | Float32Array {
  const b = new GraphBuilder();
  const p = (name: string, shape: number[]) => b.param(name, shape);
  const out = build(b, p);
  const g = b.finish(MODEL, out);
  const maxPos = Math.max(0, ...inp.positions);
  const kv = inp.kv ?? new CpuKvCache(1, 1, 1, maxPos + 1);
  const weights = { get: (name: string) => { const d = inp.params[name]; if (!d) throw new Error(`no tensor ${name}`); return d; } };
  const vals = interpret(g, weights, kv, { tokens: inp.tokens, positions: inp.positions });
  return vals.get(out) ?? new Float64Array(0);
}

/** The variants of a spec's kernel, by variant suffix ('' for single-variant kernels). */
export function variants(spec: KernelSpec, target: Target = GPU_TARGET): Map<string, RenderedKernel> {
  const key = kernelKey(spec);
  return new Map(wgslBackend.render(key, spec, target).map((r) => [r.key === key ? '' : r.key.slice(key.length + 1), r]));
}

/**
 * Runs kernels in order over one set of buffers (bound by binding name): `inputs` become
 * storage buffers, `outputs` (name -> element count, or initial contents) too, and their
 * contents afterwards are returned. `part` is the step uniform's split-part offset
 * (program/stepUniform.ts stepPart of the kernels' spec).
 */
export async function runOnGpu(
  device: GPUDevice, kernels: RenderedKernel | RenderedKernel[], tokens: number,
  inputs: Record<string, Float32Array | Int32Array | Uint32Array>, outputs: Record<string, number | Float32Array>,
  part = 0,
): Promise<Record<string, Float32Array>> {
  const bufs: Record<string, GPUBuffer> = {};
  for (const [name, d] of Object.entries(inputs)) bufs[name] = storageBuffer(device, d, name);
  for (const [name, o] of Object.entries(outputs)) bufs[name] = typeof o === 'number' ? zeroBuffer(device, o * 4, name) : storageBuffer(device, o, name);
  try {
    for (const r of Array.isArray(kernels) ? kernels : [kernels]) await runKernel(device, r, bufs, tokens, part);
    const res: Record<string, Float32Array> = {};
    for (const [name, o] of Object.entries(outputs)) {
      res[name] = await readBuffer(device, bufs[name], Float32Array, 4 * (typeof o === 'number' ? o : o.length));
    }
    return res;
  } finally {
    for (const b of Object.values(bufs)) b.destroy();
  }
}

/** Scale-relative check: max |got - want| <= tol * max |want| (want's largest magnitude). */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  let scale = 0, worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  if (!(worst <= tol * scale)) {
    throw new Error(`${what}: max |gpu - cpu| = ${worst} at ${at} (gpu ${got[at]}, cpu ${want[at]}) exceeds ${tol} * ${scale}`);
  }
}

/** Element-relative check for elementwise kernels: |got - want| <= tol * (|want| + 1), f32-overflowed elements ignored. */
export function expectCloseEach(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(want[i]) < 1e30)) continue; // overflows f32: no finite answer to compare
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= tol * (Math.abs(want[i]) + 1))) throw new Error(`${what}: element ${i}: gpu ${got[i]}, cpu ${want[i]}`);
  }
}

export type Prologue = 'none' | 'rmsnorm' | 'silu_mul' | 'gelu_mul';

/**
 * A fused matmul case: random inputs for the prologue's sources (and the residual)
 * around the given weights `w` ([K, N] storage layout), and the interpreter's answer.
 */
export function matmulCase(next: () => number, w: Float32Array, K: number, N: number, T: number, prologue: Prologue, residual: boolean, eps = 1e-5) {
  const t: Record<string, Float32Array> = { w };
  const srcNames = prologue === 'none' ? ['x'] : prologue === 'rmsnorm' ? ['x', 'norm'] : ['gate', 'up'];
  for (const name of srcNames) t[name] = data(next, name === 'norm' ? K : T * K, name === 'x' ? 2 : 1);
  if (residual) t.res = data(next, T * N);
  const want = oracle({ params: t, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => {
    const src: Node[] = srcNames.map((n) => p(n, n === 'norm' ? [K] : [T, K]));
    src.push(p('w', [K, N]));
    if (residual) src.push(p('res', [T, N]));
    return b.node('fused_matmul', { prologue, eps, residual }, src);
  });
  return { inputs: t, want, eps };
}

/** Random weights encoded as `type`: the device layout (packBlocks / packHalves) and the exact values it holds. */
export function blockWeights(type: CompactType, next: () => number, elements: number, scale: number): { packed: Uint32Array; values: Float32Array } {
  const raw = quantize(type, data(next, elements, scale));
  return { packed: type === 'f16' ? packHalves(raw, elements) : packBlocks(type, raw, elements), values: dequantize(type, raw, elements) };
}

/** A property over GPU cases, `runs` of them (each run compiles pipelines: keep it small). */
export const gpuProp = <T>(arb: fc.Arbitrary<T>, body: (c: T) => Promise<void>, runs: number) =>
  fc.assert(fc.asyncProperty(arb, body), { numRuns: runs });
/** Any 31-bit seed. */
export const seedArb = fc.integer({ min: 0, max: 2 ** 31 - 1 });

/** Routing rows for moe_experts: per token, k distinct experts in random order with weights in [0.2, 1.2). */
export function moeRouting(T: number, E: number, k: number, next: () => number): Float32Array {
  const r = new Float32Array(T * k * 2);
  for (let t = 0; t < T; t++) {
    const order = Array.from({ length: E }, (_, e) => e).sort(() => next() - 0.5).slice(0, k);
    order.forEach((e, j) => { r[(t * k + j) * 2] = 0.2 + next(); r[(t * k + j) * 2 + 1] = e; });
  }
  return r;
}

export type MoeInput = 'shared' | 'slot' | 'silu_mul' | 'swiglu';

/**
 * A routed moe_experts case with `type` expert weights: the kernel spec, the interpreter's
 * answer, the GPU buffers by binding name and the output's length, and a label for failures.
 */
export function moeExpertsCase(c: { type: CompactType; input: MoeInput; E: number; k: number; K: number; N: number; T: number; combine: boolean; residual: boolean; next: () => number }) {
  const { type, input, E, k, K, N, T, combine, residual, next } = c;
  const r = moeRouting(T, E, k, next);
  const w = blockWeights(type, next, K * N * E, 1 / Math.sqrt(K)), w2 = blockWeights(type, next, K * N * E, 1 / Math.sqrt(K));
  const rows = input === 'shared' || input === 'swiglu' ? T : T * k;
  const x = data(next, rows * K), up = data(next, rows * K), res = data(next, T * N);
  const arg = { input, combine, residual };
  const want = oracle({ params: { x, up, w: w.values, w2: w2.values, r, res }, tokens: new Int32Array(T), positions: new Int32Array(T) }, (b, p) => {
    const xs = input === 'shared' || input === 'swiglu' ? p('x', [T, K]) : p('x', [T, k, K]);
    return b.node('moe_experts', arg, [xs, ...(input === 'silu_mul' ? [p('up', [T, k, K])] : []), p('w', [K, N, E]),
      ...(input === 'swiglu' ? [p('w2', [K, N, E])] : []), p('r', [T, k, 2]), ...(residual ? [p('res', [T, N])] : [])]);
  });
  const spec: KernelSpec = { kind: 'moe_experts', K, N, experts: E, k, dense: false, ...arg, wtype: type };
  const inputs: Record<string, Float32Array | Uint32Array> = {
    ...(input === 'silu_mul' ? { gate: x, up } : { x }), w: w.packed, ...(input === 'swiglu' ? { w2: w2.packed } : {}), routing: r, ...(residual ? { res } : {}),
  };
  const label = `${type} moe_experts ${input}${combine ? ' combine' : ''}${residual ? ' residual' : ''} E=${E} k=${k} K=${K} N=${N} T=${T}`;
  return { spec, want, inputs, outLength: (combine ? T : T * k) * N, label };
}
