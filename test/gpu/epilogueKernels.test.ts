// The matmul epilogue (fuseBias.ts, fuseSoftcap.ts): y + bias[n], then softcap * tanh(y / softcap),
// then + res, on WebGPU against the float64 interpreter's fused_matmul. fast-check draws every
// kernel variant (GEMV, 4-token GEMV, tiled; GPU and CPU targets), the prologue, the weight
// format (f32, f16 as u32 pairs, q8_0, q4_0, q4_K), the epilogue's parts and a column part of a
// split weight (colOffset / outCols: the part reads the bias of its own columns and writes only
// those columns of the shared output rows).
// The tolerance is an f32 error bound per element, derived in epilogueCase.ts.
import fc from 'fast-check';
import { afterAll, beforeAll, it } from 'vitest';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { CPU_TARGET, GPU_TARGET } from '../../backends/backend.ts';
import { stepPart } from '../../program/stepUniform.ts';
import { gpuProp, rng, runOnGpu, seedArb, variants, type Prologue } from './harness.ts';
import { EPILOGUE_FORMATS, epilogueCase, expectEpilogue } from './epilogueCase.ts';

const RUNS = Number(process.env.INFER_GPU_RUNS ?? 8);

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); });
afterAll(() => device?.destroy());

const caseArb = fc.record({
  format: fc.constantFrom(...EPILOGUE_FORMATS), units: fc.integer({ min: 1, max: 200 }), N: fc.integer({ min: 1, max: 80 }),
  variant: fc.constantFrom('gemv', 'gemv4', 'tiled'), T: fc.integer({ min: 1, max: 40 }), prologue: fc.constantFrom<Prologue>('none', 'rmsnorm', 'silu_mul', 'gelu_mul'),
  // At least one of bias and softcap: the epilogue under test.
  bias: fc.boolean(), softcap: fc.option(fc.constantFrom(0.5, 3, 30), { nil: undefined }), residual: fc.boolean(),
  part: fc.option(fc.record({ before: fc.integer({ min: 1, max: 20 }), after: fc.integer({ min: 0, max: 20 }) }), { nil: undefined }),
  cpu: fc.boolean(), seed: seedArb,
}).filter((c) => c.bias || c.softcap !== undefined);

it('matmul with the bias / softcap epilogue (every variant, prologue, weight format, split part)', () => gpuProp(caseArb, async (c) => {
  const e = epilogueCase({ ...c, next: rng(c.seed) });
  const rendered = variants(e.spec, c.cpu ? CPU_TARGET : GPU_TARGET).get(c.variant)!;
  const got = (await runOnGpu(device, rendered, c.T, e.inputs, { out: c.T * e.outCols }, stepPart(e.spec))).out;
  expectEpilogue(e, got, `${c.variant}${c.cpu ? ' cpu' : ''} ${e.label}`);
}, RUNS));
