// The CPU engine equals direct interpreter calls, and generate() follows its
// stop rules (max tokens, eos, ignore-eos, context end), prefill splitting and
// bookkeeping, checked with a scripted fake engine where the rule is the point.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuKvCache, interpret } from '../../compiler/ir/index.ts';
import { type ModelInfo } from '../../program/model.ts';
import { schedule } from '../../compiler/schedule.ts';
import { runPipeline } from '../../compiler/pipeline.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate, type SingleSequenceEngine, type EngineStats, type ForwardOptions } from '../../runtime/engine.ts';
import { greedy } from '../../runtime/sampling.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';

const SHAPE: LlamaShape = { vocab: 64, dim: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, ffn: 48, maxContext: 32 };

describe('CpuEngine', () => {
  it('equals direct interpreter calls over a prefill and decode steps (fused program, unfused oracle)', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 1000 }), fc.boolean(), async (P, seed, fuse) => {
      const raw = denseLlama(SHAPE);
      const g = fuse ? runPipeline(raw).graph : raw;
      const w = new RandomWeights(g.params, seed);
      const engine = new CpuEngine(g, w, schedule(g));
      const kv = new CpuKvCache(2, 2, 8, 32);
      const prompt = Int32Array.from({ length: P }, (_, i) => (i * 13 + seed) % 64);
      const pos = Int32Array.from({ length: P }, (_, i) => i);
      const direct = interpret(raw, w, kv, { tokens: prompt, positions: pos }).get(raw.logits)!;
      const got = await engine.forward(prompt, pos);
      expect(got.length).toBe(P * 64);
      got.forEach((x, i) => expect(Math.abs(x - direct[i])).toBeLessThan(1e-5 * (1 + Math.abs(direct[i]))));
      let next = greedy(got.subarray((P - 1) * 64));
      for (let p = P; p < P + 3; p++) {
        const d = interpret(raw, w, kv, { tokens: Int32Array.of(next), positions: Int32Array.of(p) }).get(raw.logits)!;
        const e = await engine.forward(Int32Array.of(next), Int32Array.of(p), { rows: 'last' });
        e.forEach((x, i) => expect(Math.abs(x - d[i])).toBeLessThan(1e-5 * (1 + Math.abs(d[i]))));
        next = greedy(e);
      }
    }), { numRuns: 12 });
  });

  it("returns only the last row with rows: 'last', and reset starts a new sequence", async () => {
    const g = denseLlama(SHAPE);
    const engine = new CpuEngine(g, new RandomWeights(g.params, 5), schedule(g));
    const t = Int32Array.of(1, 2, 3), p = Int32Array.of(0, 1, 2);
    const all = await engine.forward(t, p);
    engine.reset();
    const last = await engine.forward(t, p, { rows: 'last' });
    expect(Array.from(last)).toEqual(Array.from(all.subarray(128)));
    const s = engine.stats();
    expect(s).toMatchObject({ backend: 'cpu', forwards: 2, tokens: 6, dispatchesPerForward: schedule(g).steps.length });
    expect(() => new CpuEngine(g, { get: () => new Float32Array(1) }, schedule(g))).toThrow(/expected \d+ values/);
  });
});

/** A fake engine whose logits always favour `script[position]`; it records each forward. */
class ScriptedEngine implements SingleSequenceEngine {
  readonly backend = 'cpu' as const;
  readonly calls: { tokens: number[]; positions: number[]; rows: string }[] = [];
  resets = 0;
  constructor(readonly model: ModelInfo, readonly maxTokensPerForward: number, private readonly next: (pos: number) => number) {}
  async forward(tokens: Int32Array, positions: Int32Array, o: ForwardOptions = {}): Promise<Float32Array> {
    this.calls.push({ tokens: Array.from(tokens), positions: Array.from(positions), rows: o.rows ?? 'all' });
    const V = this.model.vocab, rows = o.rows === 'last' ? [positions.length - 1] : Array.from(positions.keys());
    const out = new Float32Array(rows.length * V);
    rows.forEach((r, i) => { out[i * V + this.next(positions[r])] = 5; });
    return out;
  }
  reset(): void { this.resets++; this.calls.length = 0; }
  dispose(): void {}
  stats(): EngineStats {
    return { backend: 'cpu', forwards: this.calls.length, tokens: 0, dispatches: 0, dispatchesPerForward: 42, lastForwardMs: 0, setupMs: 0, bytesAllocated: 0 };
  }
}

const model = (over: Partial<ModelInfo> = {}): ModelInfo => ({ ...denseLlama(SHAPE).model, vocab: 10, maxContext: 16, eos: 2, ...over });

describe('generate', () => {
  it('prefills in one forward, then decodes one token per forward at the next position', async () => {
    const e = new ScriptedEngine(model({ eos: null }), 16, (p) => (p + 3) % 10);
    const seen: number[] = [];
    const r = await generate(e, [1, 1, 1], { maxTokens: 5, topLogprobs: 2, onToken: (id, i) => seen.push(id * 100 + i) });
    expect(r.tokens).toEqual([5, 6, 7, 8, 9]); // logits at position p favour (p + 3) % 10
    expect(seen).toEqual([500, 601, 702, 803, 904]);
    expect(e.calls.map((c) => c.positions)).toEqual([[0, 1, 2], [3], [4], [5], [6]]);
    expect(e.calls.every((c) => c.rows === 'last')).toBe(true);
    expect(r.topLogprobs.map((t) => t.length)).toEqual([2, 2, 2, 2, 2]);
    expect(r.topLogprobs[0][0].id).toBe(5);
    expect(r.stats).toMatchObject({ prompt_tokens: 3, generated_tokens: 5, dispatches_per_token: 42, stop_reason: 'max_tokens', backend: 'cpu' });
    expect(e.resets).toBe(1);
  });

  it('stops at eos (included) unless ignoreEos', async () => {
    const script = (p: number) => (p === 4 ? 2 : 7);
    const stopped = await generate(new ScriptedEngine(model(), 16, script), [1, 1], { maxTokens: 8 });
    expect(stopped.tokens).toEqual([7, 7, 7, 2]);
    expect(stopped.stats.stop_reason).toBe('eos');
    const kept = await generate(new ScriptedEngine(model(), 16, script), [1, 1], { maxTokens: 8, ignoreEos: true });
    expect(kept.tokens).toEqual([7, 7, 7, 2, 7, 7, 7, 7]);
  });

  it('stops with a notice when the next forward would leave the context', async () => {
    const e = new ScriptedEngine(model({ eos: null, maxContext: 6 }), 16, () => 4);
    const r = await generate(e, [1, 1, 1, 1], { maxTokens: 10 });
    expect(r.tokens.length).toBe(3); // forwards at positions 0-3 (prefill), 4, 5
    expect(r.stats.stop_reason).toBe('max_context');
    expect(r.notice).toMatch(/context of 6/);
    expect(Math.max(...e.calls.flatMap((c) => c.positions))).toBe(5);
  });

  it('splits a prefill longer than the engine accepts per forward', async () => {
    const e = new ScriptedEngine(model({ eos: null }), 4, () => 1);
    await generate(e, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3], { maxTokens: 1 });
    expect(e.calls.map((c) => c.positions)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  });

  it('rejects bad prompts clearly, and maxTokens 0 runs nothing', async () => {
    const e = new ScriptedEngine(model(), 16, () => 1);
    await expect(generate(e, [], { maxTokens: 1 })).rejects.toThrow(/prompt is empty/);
    await expect(generate(e, [10], { maxTokens: 1 })).rejects.toThrow(/outside the vocabulary of 10/);
    await expect(generate(e, new Array(17).fill(1), { maxTokens: 1 })).rejects.toThrow(/context holds 16/);
    await expect(generate(e, [1], { maxTokens: -1 })).rejects.toThrow(/max tokens/);
    const r = await generate(e, [1], { maxTokens: 0 });
    expect(r.tokens).toEqual([]);
    expect(e.calls).toEqual([]);
  });

  it('greedy generation on the CPU engine equals a hand-written greedy loop', async () => {
    const g = denseLlama(SHAPE);
    const w = new RandomWeights(g.params, 11);
    const r = await generate(new CpuEngine(g, w, schedule(g)), [4, 8, 15], { maxTokens: 6 });
    const kv = new CpuKvCache(2, 2, 8, 32);
    let logits = interpret(g, w, kv, { tokens: Int32Array.of(4, 8, 15), positions: Int32Array.of(0, 1, 2) }).get(g.logits)!;
    const want: number[] = [];
    for (let p = 3; want.length < 6; p++) {
      want.push(greedy(Float32Array.from(logits.subarray(logits.length - 64))));
      logits = interpret(g, w, kv, { tokens: Int32Array.of(want.at(-1)!), positions: Int32Array.of(p) }).get(g.logits)!;
    }
    expect(r.tokens).toEqual(want);
  });
});
