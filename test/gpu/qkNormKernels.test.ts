// Qwen3's per-head q/k RMS norm folded into RoPE and the KV append (fuseQkNorm.ts), on WebGPU
// against the float64 interpreter: the rope kernel with `norm` (both RoPE styles) and the KV
// append with `norm` (with and without its RoPE), fast-check drawing heads, head size, tokens,
// positions, theta and eps.
// The tolerance is an f32 error bound per element, derived in qkNormCheck.ts.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kvRowWord } from '../../program/kv.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { gpuProp, oracle, rng, runOnGpu, seedArb as seed, variants, data } from './harness.ts';
import { expectWithinBound, normalised } from './qkNormCheck.ts';

const RUNS = Number(process.env.INFER_GPU_RUNS ?? 10);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const caseArb = fc.record({
  heads: fc.integer({ min: 1, max: 6 }), headDim: fc.integer({ min: 1, max: 64 }).map((d) => 2 * d), T: fc.integer({ min: 1, max: 12 }),
  theta: fc.constantFrom(10000, 1e6, 77.5), neox: fc.boolean(), eps: fc.constantFrom(1e-6, 0.25), start: fc.integer({ min: 0, max: 8000 }), seed,
});

it('rope with the per-head norm equals rope(rmsnorm(x)) (both RoPE styles)', () => gpuProp(caseArb, async ({ heads, headDim, T, theta, neox, eps, start, seed }) => {
  const next = rng(seed);
  const x = data(next, T * heads * headDim, 3), norm = data(next, headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  const want = oracle({ params: { x, norm }, tokens: new Int32Array(T), positions }, (b, p) =>
    b.node('rope', { theta, ...(neox ? { neox } : {}), norm: eps }, [p('x', [T, heads, headDim]), b.positions(), p('norm', [headDim])]));
  const got = await runOnGpu(device, variants({ kind: 'rope', heads, headDim, theta, ...(neox ? { neox } : {}), norm: eps }).get('')!, T, { x, positions, norm }, { out: T * heads * headDim });
  expectWithinBound(got.out, want, normalised(x, norm, headDim, eps), headDim, neox, true, `rope norm ${neox ? 'neox' : 'normal'} H=${heads} D=${headDim} T=${T}`);
}, RUNS));

it('kv_append with the per-head norm stores rope(rmsnorm(k)) (or rmsnorm(k) without RoPE) and v', () => gpuProp(fc.tuple(caseArb, fc.boolean()), async ([{ heads: kvHeads, headDim, T, theta, neox, eps, start, seed }, withRope]) => {
  const next = rng(seed);
  const k = data(next, T * kvHeads * headDim, 3), v = data(next, T * kvHeads * headDim), norm = data(next, headDim);
  const positions = Int32Array.from({ length: T }, (_, i) => start + i);
  // Token t goes to page T - 1 - t (pages of one slot): a scatter, not a copy.
  const slots = Int32Array.from({ length: T }, (_, t) => T - 1 - t);
  const rope = withRope ? theta : null;
  // The interpreter's K as the cache would hold it: the normalised, rotated rows (rope = the kernel's meaning, ir/ops.ts kv_store).
  const want = oracle({ params: { k, norm }, tokens: new Int32Array(T), positions }, (b, p) => {
    const n = b.node('rmsnorm', { eps }, [p('k', [T, kvHeads, headDim]), p('norm', [headDim])]);
    return rope === null ? n : b.node('rope', { theta, ...(neox ? { neox } : {}) }, [n, b.positions()]);
  });
  const spec = { kind: 'kv_append' as const, kvHeads, headDim, pageSize: 1, dtype: 'f32' as const, rope, ...(neox && rope !== null ? { neox } : {}), norm: eps };
  const got = await runOnGpu(device, variants(spec).get('')!, T, { k, v, positions, kv_slot: slots, norm }, { kcache: T * kvHeads * headDim, vcache: T * kvHeads * headDim });
  const gotK = new Float64Array(k.length), gotV = new Float64Array(v.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < kvHeads; h++) {
      const w = kvRowWord({ kvHeads, headDim, pageSize: 1, dtype: 'f32' }, slots[t], h, 0), o = (t * kvHeads + h) * headDim;
      for (let d = 0; d < headDim; d++) { gotK[o + d] = got.kcache[w + d]; gotV[o + d] = got.vcache[w + d]; }
    }
  }
  expectWithinBound(gotK, want, normalised(k, norm, headDim, eps), headDim, neox, rope !== null, `kv_append norm${rope !== null ? ` rope ${neox ? 'neox' : 'normal'}` : ''} KH=${kvHeads} D=${headDim} T=${T}`);
  expect(Array.from(gotV)).toEqual(Array.from(v));
}, RUNS));
