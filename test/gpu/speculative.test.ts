// Speculative decoding on the WebGPU engine: for random targets (two fixed
// shapes, so lavapipe compiles each kernel once), seeds, proposers (an
// unrelated draft, the target cut to fewer layers, prompt lookup) and K in
// 1..8, fixed or adaptive, the output equals plain greedy decoding on the same
// engine type token for token. K + 1 >= 8 verification passes take the tiled
// matmul path while plain decode takes the GEMV one, so this also checks that
// the two paths agree on the argmax. A batch of more sequences than the engines
// take per forward, with prompt and verification batches over their token
// budget, runs as several forwards and still matches. No adapter is a failure,
// never a skip.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { generate } from '../../runtime/engine.ts';
import { speculativeGenerate } from '../../runtime/speculative/decode.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { schedule } from '../../compiler/schedule.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { specSetup, type MakeEngine, type ProposerChoice } from '../fixtures/specSetup.ts';

let device: GPUDevice;
beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
afterAll(() => device?.destroy());

// A self-draft binds the target's weight buffers (shareWeightsWith), as the CLI does.
const gpu: MakeEngine = (graph, weights, program, weightsOf) => WebGpuEngine.create({
  device, program, backend: wgslBackend, weights, ...(weightsOf instanceof WebGpuEngine ? { shareWeightsWith: weightsOf } : {}),
});

const SHAPES: LlamaShape[] = [
  { vocab: 48, dim: 32, layers: 3, heads: 4, kvHeads: 2, headDim: 8, ffn: 40, maxContext: 64 },
  { vocab: 48, dim: 32, layers: 2, heads: 2, kvHeads: 1, headDim: 16, ffn: 40, maxContext: 64 },
];
const DRAFT: LlamaShape = { vocab: 48, dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, ffn: 24, maxContext: 64 };

const choiceArb = (t: LlamaShape): fc.Arbitrary<ProposerChoice> => fc.oneof(
  fc.record({ kind: fc.constant('draft' as const), seed: fc.integer({ min: 1, max: 1 << 20 }), shape: fc.constant(DRAFT) }),
  fc.record({ kind: fc.constant('self' as const), layers: fc.integer({ min: 1, max: t.layers - 1 }) }),
  fc.record({ kind: fc.constant('ngram' as const), n: fc.integer({ min: 1, max: 2 }) }),
);

describe('speculative decoding, greedy (WebGPU engine)', () => {
  it('equals plain greedy decoding token for token: random targets, proposers, K in 1..8, fixed or adaptive', async () => {
    const arb = fc.constantFrom(...SHAPES).chain((t) => fc.tuple(fc.constant(t), choiceArb(t), fc.integer({ min: 1, max: 1 << 20 }),
      fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 10 })));
    let passes = 0, accepted = 0;
    await fc.assert(fc.asyncProperty(arb, async ([shape, choice, seed, K, adaptive, prompt]) => {
      const s = await specSetup(shape, seed, choice, gpu);
      try {
        const want = await generate(s.reference, prompt, { maxTokens: 20, ignoreEos: true });
        const got = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 20, lookahead: K, adaptive, ignoreEos: true });
        expect(got.sequences[0].tokens).toEqual(want.tokens);
        passes += got.stats.spec.target_passes;
        accepted += got.stats.spec.accepted;
      } finally { s.dispose(); }
    }), { numRuns: 10, endOnFailure: true });
    expect(accepted, 'some drafts were accepted (the property is not vacuous)').toBeGreaterThan(0);
    expect(passes).toBeGreaterThan(0);
  }, 300_000);

  it('a batch of three sequences, one target engine each, matches plain decoding per sequence', async () => {
    const prompts = [[1, 2, 3, 1, 2, 3, 1], [9], [4, 4, 4, 4, 4]];
    const s = await specSetup(SHAPES[0], 77, { kind: 'self', layers: 2 }, gpu, prompts.length);
    try {
      const got = await speculativeGenerate(s.target, s.proposer, prompts, { maxTokens: 16, lookahead: 5, ignoreEos: true });
      for (let i = 0; i < prompts.length; i++) expect(got.sequences[i].tokens).toEqual((await generate(s.reference, prompts[i], { maxTokens: 16, ignoreEos: true })).tokens);
    } finally { s.dispose(); }
  }, 120_000);

  it("more sequences than maxSequences and batches over maxTokensPerForward run split to the engines' limits", async () => {
    const prompts = [[1, 2, 3, 1, 2, 3, 1, 2, 3, 1], [9], [4, 4, 4, 4, 4], [7, 8, 7, 8, 7, 8, 7], [2, 5]];
    // 2 sequences and 8 tokens per forward; the pool holds all five sequences.
    const limited: MakeEngine = (graph, weights, program) => WebGpuEngine.create({
      device, program, backend: wgslBackend, weights, maxSequences: 2, maxTokensPerForward: 8, kvPages: program.kv.maxSequences * program.kv.pagesPerSequence,
    });
    const s = await specSetup(SHAPES[0], 78, { kind: 'self', layers: 1 }, limited, prompts.length);
    try {
      expect([s.target.engine.maxSequences, s.target.engine.maxTokensPerForward]).toEqual([2, 8]);
      let steps = 0;
      const got = await speculativeGenerate(s.target, s.proposer, prompts, { maxTokens: 12, lookahead: 5, ignoreEos: true, onStep: () => steps++ });
      for (let i = 0; i < prompts.length; i++) expect(got.sequences[i].tokens).toEqual((await generate(s.reference, prompts[i], { maxTokens: 12, ignoreEos: true })).tokens);
      expect(got.stats.spec.accepted).toBeGreaterThan(0);
      // One target call per step plus two prefill rounds (the 10-token prompt in chunks of 8): more engine forwards than that.
      expect(s.target.stats().calls).toBeGreaterThan(steps + 2);
    } finally { s.dispose(); }
  }, 120_000);

  it('sampled decoding runs on WebGPU engines: first token as plain sampling with the seed, the rest valid and reproducible', async () => {
    const s = await specSetup(SHAPES[1], 5, { kind: 'draft', seed: 3, shape: DRAFT }, gpu);
    try {
      const sampling = { temperature: 0.9, topK: 20, seed: 12 };
      const prompt = [3, 1, 4, 1, 5];
      const plain = await generate(s.reference, prompt, { maxTokens: 1, sampling });
      const a = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 24, lookahead: 4, sampling, ignoreEos: true });
      const b = await speculativeGenerate(s.target, s.proposer, [prompt], { maxTokens: 24, lookahead: 4, sampling, ignoreEos: true });
      expect(a.sequences[0].tokens[0]).toBe(plain.tokens[0]);
      expect(a.sequences[0].tokens).toHaveLength(24);
      expect(a.sequences[0].tokens.every((t) => Number.isInteger(t) && t >= 0 && t < SHAPES[1].vocab)).toBe(true);
      expect(b.sequences[0].tokens).toEqual(a.sequences[0].tokens);
      expect(a.stats.spec.tested).toBeGreaterThan(0);
    } finally { s.dispose(); }
  }, 120_000);
});

it('a self-draft engine binds the target\'s weight buffers: no second upload, the same logits', async () => {
  const shape = SHAPES[0];
  const target = denseLlama(shape), draft = denseLlama({ ...shape, layers: 1 });
  const weights = new RandomWeights(target.params, 31);
  const make = (g: typeof target, shareWeightsWith?: WebGpuEngine, w = weights) => WebGpuEngine.create({ device, program: schedule(g), backend: wgslBackend, weights: w, shareWeightsWith });
  const t = await make(target);
  const alone = await make(draft), shared = await make(draft, t);
  try {
    // Every draft param (embedding, layer 0, output norm and head) is the target's: none is allocated again.
    const paramBytes = schedule(draft).buffers.filter((b) => b.kind === 'param').reduce((a, b) => a + Math.ceil(b.elements * 4 / 16) * 16, 0);
    expect(alone.stats().bytesAllocated - shared.stats().bytesAllocated).toBe(paramBytes);
    const tokens = Int32Array.of(3, 9, 1, 40), positions = Int32Array.of(0, 1, 2, 3);
    expect(Array.from(await shared.forward(tokens, positions))).toEqual(Array.from(await alone.forward(tokens, positions)));
    // A draft of another shape binds nothing it cannot use.
    const narrow = denseLlama({ ...shape, dim: 16, heads: 2, kvHeads: 1 });
    const nw = new RandomWeights(narrow.params, 5);
    const other = await make(narrow, t, nw), own = await make(narrow, undefined, nw);
    expect(other.stats().bytesAllocated).toBe(own.stats().bytesAllocated);
    other.dispose(); own.dispose();
  } finally { shared.dispose(); alone.dispose(); t.dispose(); }
});
