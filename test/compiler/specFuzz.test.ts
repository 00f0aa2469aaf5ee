// Properties over mutated example specs (specMutations.ts):
//  - check (compileSpec) answers every input within a time bound, with a program or
//    with diagnostics located inside the file, never an exception or an internal message;
//  - a spec that checks clean and is small runs one token on the CPU engine and on
//    WebGPU: each either succeeds, and then their logits agree, or fails with a clear
//    message (never 'Invalid typed array length', a stack overflow or 'undefined').
// The seed is fixed so CI is reproducible; fast-check prints it with the shrunk
// counterexample on failure. INFER_FUZZ_SEED=N explores other inputs.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import type { Engine } from '../../runtime/engine.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { anySpec, attentionOnly, mlpOnly, setLayers, SMALL_EXAMPLES, smallSpec, type Spec } from './specMutations.ts';

const SEED = Number(process.env.INFER_FUZZ_SEED ?? 20261202);
const params = (numRuns: number) => ({ seed: SEED, numRuns, endOnFailure: true });

/** The ordinary bound; the largest structures the limits allow (500 layers, 5000-term sums) get more. */
const CHECK_MS = 2000;
const LARGE_CHECK_MS = 20_000;

/** Messages that betray an unchecked size or an internal failure rather than explain a problem. */
const INTERNAL = /Invalid typed array length|Invalid array length|Maximum call stack|\bundefined\b|\bNaN\b|is not a function|Cannot read properties|internal error/;

const report = (s: Spec) => `${s.name} with ${s.edits.join('; ') || 'no edits'}`;

function checkOutcome(s: Spec) {
  const t0 = performance.now();
  const c = compileSpec(s.text, s.name);
  const ms = performance.now() - t0;
  expect(ms, `${report(s)}: check took ${ms.toFixed(0)} ms`).toBeLessThan(s.large ? LARGE_CHECK_MS : CHECK_MS);
  if (c.diagnostics.length === 0) {
    expect(c.program, report(s)).not.toBeNull();
    return c;
  }
  expect(c.program, report(s)).toBeNull();
  const lines = s.text.split(/\r\n|\r|\n/);
  for (const d of c.diagnostics) {
    const where = `${report(s)}: ${d.file}:${d.line}:${d.col}: ${d.message}`;
    expect(d.file, where).toBe(s.name);
    expect(d.line >= 1 && d.line <= lines.length, where).toBe(true);
    expect(d.col >= 1 && d.col <= lines[d.line - 1].length + 1, where).toBe(true);
    expect(d.message, where).not.toMatch(INTERNAL);
  }
  return c;
}

describe('check on mutated specs', () => {
  it('answers in time with a program or located diagnostics', () => {
    fc.assert(fc.property(anySpec, (s) => { checkOutcome(s); }), params(300));
  });
});

/** Small enough for a one-token run on both engines in this test's time budget. */
function small(c: ReturnType<typeof compileSpec>): boolean {
  const g = c.graph!;
  const elements = g.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return elements <= 1 << 21 && g.model.layers <= 4 && g.model.maxContext <= 4096 && g.nodes.length <= 2000 && g.model.weights.binding === 'random';
}

type Outcome = { logits: Float32Array } | { error: string };

async function oneToken(make: () => Engine | Promise<Engine>, token: number): Promise<Outcome> {
  let engine: Engine | undefined;
  try {
    engine = await make();
    return { logits: await engine.forward(Int32Array.of(token), Int32Array.of(0)) };
  } catch (e) {
    return { error: e instanceof Error ? e.message : `a non-Error was thrown: ${String(e)}` };
  } finally {
    engine?.dispose();
  }
}

/** One token on each engine: each succeeds (and they agree) or fails clearly. Null when the spec is not run. */
async function runBoth(s: Spec, device: GPUDevice): Promise<{ cpu: Outcome; gpu: Outcome } | null> {
  const c = checkOutcome(s);
  if (!c.program || !small(c)) return null;
  const { graph, program } = c;
  const weights = new RandomWeights(graph!.params, graph!.model.weights.binding === 'random' ? graph!.model.weights.seed : 0);
  const token = Math.min(1, graph!.model.vocab - 1);
  const cpu = await oneToken(() => new CpuEngine(graph!, weights, program), token);
  const gpu = await oneToken(() => WebGpuEngine.create({ device, program, backend: wgslBackend, weights }), token);
  for (const [name, o] of [['cpu', cpu], ['webgpu', gpu]] as const) {
    if ('error' in o) expect(o.error, `${report(s)}: ${name}`).not.toMatch(INTERNAL);
  }
  if ('logits' in cpu && 'logits' in gpu) {
    expect(gpu.logits.length).toBe(cpu.logits.length);
    let scale = 1, worst = 0;
    for (let i = 0; i < cpu.logits.length; i++) {
      scale = Math.max(scale, Math.abs(cpu.logits[i]));
      worst = Math.max(worst, Math.abs(cpu.logits[i] - gpu.logits[i]));
    }
    expect(worst / scale, `${report(s)}: logits differ`).toBeLessThan(1e-3);
  } else {
    // Both engines take the same programs: a difference must come from the device's limits.
    const gpuError = 'error' in gpu ? gpu.error : '';
    expect('error' in cpu ? '' : gpuError, report(s)).toMatch(/^$|storage binding limit|device allows/);
  }
  return { cpu, gpu };
}

describe('one-token runs of small mutated specs', () => {
  let device: GPUDevice;
  beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
  afterAll(() => device?.destroy());

  it('CPU and WebGPU each succeed (agreeing) or fail with a clear message', async () => {
    let ran = 0;
    await fc.assert(fc.asyncProperty(smallSpec, async (s) => { if (await runBoth(s, device)) ran++; }), params(25));
    expect(ran).toBeGreaterThan(5);
  });

  it('MLP-only and attention-only layers, dense and MoE, run on both engines', async () => {
    for (const name of ['examples/tiny-llama.infer', 'examples/tiny-mixtral.infer']) {
      const base = SMALL_EXAMPLES.find((e) => e.name === name)!;
      for (const s of [mlpOnly(base), attentionOnly(base), setLayers(base, 1)]) {
        expect(compileSpec(s.text, s.name).diagnostics, report(s)).toEqual([]);
        const r = await runBoth(s, device);
        expect(r && 'logits' in r.cpu && 'logits' in r.gpu, `${report(s)}: ${JSON.stringify(r && { cpu: 'error' in r.cpu && r.cpu.error, gpu: 'error' in r.gpu && r.gpu.error })}`).toBe(true);
      }
    }
  });
});
