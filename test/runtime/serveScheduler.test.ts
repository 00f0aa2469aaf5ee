// The serving scheduler without HTTP, on paged KV (16-token pages) so prompts share
// prefix pages: requests arriving between steps, a pool too small for all of them at
// once (they wait), cancellations: every completed request equals its single run, the
// pool's invariants hold, and every page is back when the loop goes idle.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { QueueFullError, Scheduler, type Completion } from '../../runtime/serve/scheduler.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';

const file = new URL('../../examples/tiny-paged-int8.infer', import.meta.url).pathname;
const c = compileSpec(readFileSync(file, 'utf8'), file);
const program = c.program!, graph = c.graph!;
const weights = new RandomWeights(program.params, (program.model.weights as { seed: number }).seed);
const alone = new CpuEngine(graph, weights, program, { maxSequences: 1 });

async function single(prompt: number[], maxTokens: number, seed: number, temperature: number): Promise<number[]> {
  alone.reset();
  const r = await generate(alone, prompt, { maxTokens, sampling: { temperature, seed } });
  const i = r.tokens.indexOf(program.model.eos!);
  return i < 0 ? r.tokens : r.tokens.slice(0, i);
}

describe('Scheduler', () => {
  it('continuous batching with shared prefix pages, waiting for KV room, and cancellation', async () => {
    const engine = new CpuEngine(graph, weights, program, { maxSequences: 6, kvPages: 12 });
    const s = new Scheduler(engine, { maxQueue: 100 });
    const system = Array.from({ length: 35 }, (_, k) => (k * 37) % 250 + 3);
    const jobs = Array.from({ length: 18 }, (_, i) => ({
      prompt: i % 2 === 0 ? [...system, i + 3, i + 4] : Array.from({ length: 1 + ((i * 11) % 30) }, (_, k) => (i * 13 + k * 7) % 250 + 3),
      max: 4 + ((i * 5) % 20), seed: i, temperature: i % 3 === 0 ? 0.8 : 0, cancelAt: i % 6 === 5 ? 3 : -1,
    }));
    const done: Promise<Completion>[] = [];
    const streamed: number[][] = jobs.map(() => []);
    let peakShared = 0;
    for (const [i, j] of jobs.entries()) {
      // A third arrive at once, the rest one per step-ish (between steps of the running loop).
      if (i >= 6) await new Promise((r) => setImmediate(r));
      const t = s.submit({ prompt: j.prompt, maxTokens: j.max, sampling: { temperature: j.temperature, seed: j.seed }, onToken: (tok) => {
        streamed[i].push(tok.id);
        engine.kv.check();
        peakShared = Math.max(peakShared, s.engine.kv.usage().sequences);
        if (streamed[i].length === j.cancelAt) t.cancel();
      } });
      done.push(t.done);
    }
    const results = await Promise.all(done);
    for (const [i, j] of jobs.entries()) {
      const want = await single(j.prompt, j.max, j.seed, j.temperature);
      const r = results[i];
      expect(r.tokens, `request ${i}`).toEqual(streamed[i]);
      if (j.cancelAt > 0 && r.finish === 'cancelled') expect(want.slice(0, r.tokens.length)).toEqual(r.tokens);
      else expect(r.tokens, `request ${i} (${r.finish})`).toEqual(want);
    }
    expect(results.some((r) => r.finish === 'cancelled')).toBe(true);
    expect(peakShared).toBeGreaterThan(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(s.load).toEqual({ running: 0, waiting: 0 });
    engine.kv.check();
    expect(engine.kv.pool.used).toBe(0);
  });

  it('bounds the queue and refuses prompts that can never run', async () => {
    const engine = new CpuEngine(graph, weights, program, { maxSequences: 1, kvPages: 2 });
    const s = new Scheduler(engine, { maxQueue: 2 });
    expect(() => s.check(Array(40).fill(1))).toThrow(/KV pages/);
    expect(() => s.check(Array(600).fill(1))).toThrow(/context/);
    // The first joins the batch at once (the loop starts synchronously); two wait; a fourth is refused.
    const tickets = [0, 1, 2].map(() => s.submit({ prompt: [1, 2], maxTokens: 50, sampling: {} }));
    expect(() => s.submit({ prompt: [1, 2], maxTokens: 50, sampling: {} })).toThrow(QueueFullError);
    for (const t of tickets) t.cancel();
    // The running one is mid-forward: its pages come back when that step returns.
    expect((await Promise.all(tickets.map((t) => t.done))).map((r) => r.finish)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(engine.kv.pool.used).toBe(0);
  });
});
