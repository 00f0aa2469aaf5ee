// Nothing generated is lost: every generation loop (generate, generateBatch,
// speculativeGenerate) returns the tokens a sequence produced when something other than
// max_tokens / eos ends it (a full KV pool, a prompt that can never fit, a cancelled
// AbortSignal, a failing forward), with the stop reason and a message, and the other
// sequences of a batch carry on to exactly what they generate alone.
import { describe, expect, it } from 'vitest';
import { runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { generateBatch } from '../../runtime/batchGenerate.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate, type Engine } from '../../runtime/engine.ts';
import { speculativeGenerate } from '../../runtime/speculative/decode.ts';
import { NgramProposer } from '../../runtime/speculative/ngram.ts';
import { PagedSeqModel } from '../../runtime/speculative/pagedSeqModel.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';

const PAGE = 4;

function engine(pages?: number, maxSequences = 4, maxTokensPerForward?: number): CpuEngine {
  const g = runPipeline(denseLlama({ vocab: 13, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 6, maxContext: 24, pageSize: PAGE })).graph;
  const e = new CpuEngine(g, new RandomWeights(g.params, 11), schedule(g), { maxSequences, ...(pages ? { kvPages: pages } : {}) });
  // A small per-forward limit (as a GPU's buffers impose) makes long prompts prefill in chunks.
  if (maxTokensPerForward) Object.defineProperty(e, 'maxTokensPerForward', { value: maxTokensPerForward });
  return e;
}

const alone = (prompt: number[], maxTokens: number) => generate(engine(), prompt, { maxTokens, ignoreEos: true });

/** An engine whose `n`-th forward (0-based, counting batch forwards) throws. */
function failingAt(e: CpuEngine, n: number): Engine {
  let calls = 0;
  const fb = e.forwardBatch.bind(e);
  e.forwardBatch = async (items, o) => { if (calls++ === n) throw new Error('device lost'); return fb(items, o); };
  return e;
}

describe('generate keeps what it generated', () => {
  it('a full pool ends with kv_exhausted and the tokens so far', async () => {
    const full = await alone([1, 2, 3], 20);
    const r = await generate(engine(2), [1, 2, 3], { maxTokens: 20, ignoreEos: true });
    // 2 pages of 4 slots: the prompt and 5 tokens fit, the 6th needs slot 8.
    expect(r.stats.stop_reason).toBe('kv_exhausted');
    expect(r.tokens).toEqual(full.tokens.slice(0, 6));
    expect(r.notice).toMatch(/stopped after 6 tokens: KV page pool exhausted/);
  });

  it('a prompt larger than the pool ends with prompt_too_large and no tokens', async () => {
    const r = await generate(engine(2), [1, 2, 3, 4, 5, 6, 7, 8, 9], { maxTokens: 4 });
    expect(r.stats.stop_reason).toBe('prompt_too_large');
    expect(r.tokens).toEqual([]);
    expect(r.notice).toMatch(/the prompt's 9 tokens do not fit the KV pool/);
  });

  it('an aborted signal ends with cancelled; a failing forward with error and its message', async () => {
    const ac = new AbortController();
    const r = await generate(engine(), [1, 2], { maxTokens: 20, ignoreEos: true, signal: ac.signal, onToken: (_, i) => { if (i === 2) ac.abort(); } });
    expect(r.stats.stop_reason).toBe('cancelled');
    expect(r.tokens).toEqual((await alone([1, 2], 3)).tokens);
    const f = await generate(failingAt(engine(), 4), [1, 2], { maxTokens: 20, ignoreEos: true });
    expect(f.stats.stop_reason).toBe('error');
    expect(f.tokens).toEqual((await alone([1, 2], 4)).tokens);
    expect(f.notice).toBe('stopped after 4 tokens: device lost');
  });
});

describe('generateBatch keeps every sequence', () => {
  it('a prompt larger than the pool stops alone; the others generate what they generate alone', async () => {
    const prompts = [[1, 2], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3], [5]];
    const e = engine(3);
    const r = await generateBatch(e, prompts, { maxTokens: 6, ignoreEos: true });
    expect(r.sequences.map((q) => q.stop_reason)).toEqual(['max_tokens', 'prompt_too_large', 'max_tokens']);
    expect(r.sequences[1]).toMatchObject({ tokens: [], message: expect.stringMatching(/the prompt's 13 tokens do not fit the KV pool/) });
    for (const i of [0, 2]) expect(r.sequences[i].tokens).toEqual((await alone(prompts[i], 6)).tokens);
    e.kv.check();
    expect(e.kv.pool.used).toBe(0);
  });

  it('a prompt over the context stops alone with prompt_too_large', async () => {
    const r = await generateBatch(engine(), [[1], new Array(25).fill(2)], { maxTokens: 3, ignoreEos: true });
    expect(r.sequences.map((q) => q.stop_reason)).toEqual(['max_tokens', 'prompt_too_large']);
    expect(r.sequences[1].message).toMatch(/25 tokens but the model's context holds 24/);
  });

  it('cancelling keeps each sequence\'s tokens; a failing forward ends the sequences it carried', async () => {
    const ac = new AbortController();
    let n = 0;
    const r = await generateBatch(engine(), [[1], [2, 3]], { maxTokens: 20, ignoreEos: true, signal: ac.signal, onToken: () => { if (++n === 4) ac.abort(); } });
    expect(r.sequences.map((q) => q.stop_reason)).toEqual(['cancelled', 'cancelled']);
    for (const [i, p] of [[1], [2, 3]].entries()) expect(r.sequences[i].tokens).toEqual((await alone(p, 2)).tokens);
    const f = await generateBatch(failingAt(engine(), 3), [[1], [2, 3]], { maxTokens: 20, ignoreEos: true });
    expect(f.sequences.map((q) => [q.stop_reason, q.tokens.length])).toEqual([['error', 3], ['error', 3]]);
    expect(f.sequences[0].message).toBe('stopped after 3 tokens: device lost');
  });

  it('a prompt longer than one forward prefills in chunks (and never hangs)', async () => {
    const prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [4, 5]];
    const r = await generateBatch(engine(undefined, 4, 4), prompts, { maxTokens: 5, ignoreEos: true });
    for (const [i, p] of prompts.entries()) {
      expect(r.sequences[i].stop_reason).toBe('max_tokens');
      expect(r.sequences[i].tokens).toEqual((await alone(p, 5)).tokens);
    }
  });
});

describe('speculativeGenerate keeps every sequence', () => {
  it('a full pool stops the newest sequence; the rest finish; cancelling keeps the tokens', async () => {
    const prompts = [[1, 2, 1, 2], [3, 4, 3, 4]];
    const e = engine(4);
    const r = await speculativeGenerate(new PagedSeqModel(e), new NgramProposer(2), prompts, { maxTokens: 10, lookahead: 3, ignoreEos: true });
    expect(r.sequences.map((q) => q.stop)).toEqual(['max_tokens', 'kv_exhausted']);
    expect(r.sequences[0].tokens).toEqual((await alone(prompts[0], 10)).tokens);
    const cut = r.sequences[1];
    expect(cut.tokens).toEqual((await alone(prompts[1], 10)).tokens.slice(0, cut.tokens.length));
    expect(cut.notice).toMatch(/KV page pool exhausted/);
    expect(e.kv.pool.used).toBe(0);
    const ac = new AbortController();
    const c = await speculativeGenerate(new PagedSeqModel(engine()), new NgramProposer(2), prompts, { maxTokens: 10, lookahead: 3, ignoreEos: true, signal: ac.signal, onStep: () => ac.abort() });
    expect(c.sequences.map((q) => q.stop)).toEqual(['cancelled', 'cancelled']);
    for (const [i, q] of c.sequences.entries()) expect(q.tokens).toEqual((await alone(prompts[i], 10)).tokens.slice(0, q.tokens.length));
  });
});
