// `infer serve` chat completions through the official openai client: a random-weight llama
// around the real Llama 2 vocabulary and chat template on the CPU engine. Replies, streamed
// or not, equal greedy generation of the rendered conversation run directly; bad messages
// get 400 error objects; a model without a tokenizer keeps answering 501 saying why.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeExampleModel } from '../../bench/fixtures/exampleModel.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { Scheduler } from '../../runtime/serve/scheduler.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { chatTemplateFor, type ChatMessage, type Tokenizer } from '../../runtime/tokenizer/index.ts';
import type { SamplingOptions } from '../../runtime/sampling.ts';
import { loadTokenizer } from '../../cli/text.ts';
import { startServer, type RunningServer } from '../../cli/serve/server.ts';
import { serve as serveNoTokenizer, type Served } from './serveFixture.ts';

let tok: Tokenizer, srv: RunningServer, client: OpenAI, alone: CpuEngine, engine: CpuEngine, model: string;
let plain: Served;

beforeAll(async () => {
  const m = writeExampleModel(mkdtempSync(join(tmpdir(), 'infer-serve-chat-')));
  tok = loadTokenizer(m.gguf).tokenizer;
  const c = compileSpec(readFileSync(m.spec, 'utf8'), m.spec, {});
  const program = c.program!, graph = c.graph!;
  const weights = GgufWeights.load(m.gguf, program.params);
  model = program.model.name;
  engine = new CpuEngine(graph, weights, program, { maxSequences: 4 });
  alone = new CpuEngine(graph, weights, program, { maxSequences: 1 });
  srv = await startServer({ scheduler: new Scheduler(engine, { maxQueue: 16 }), modelId: model, tokenizer: tok, host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30_000 });
  plain = await serveNoTokenizer();
}, 60_000);
afterAll(async () => { await srv?.close(1000); await plain?.srv.close(1000); });

/** The rendered conversation's greedy reply run directly: ids up to the first end-of-generation id, and their text. */
async function direct(messages: ChatMessage[], maxTokens: number, sampling: SamplingOptions = { temperature: 0 }): Promise<{ prompt: number[]; ids: number[]; text: string }> {
  const chat = chatTemplateFor(tok, 'test')!;
  const rendered = chat.template.render(messages, { addGenerationPrompt: true, bosToken: chat.bosToken, eosToken: chat.eosToken });
  expect(rendered.startsWith('<s>[INST]')).toBe(true);
  const prompt = tok.encode(rendered, { parseSpecial: true });
  // One BOS per user turn, as the template writes them: the tokenizer adds none.
  expect(prompt.filter((t) => t === tok.bos).length).toBe(rendered.split(chat.bosToken).length - 1);
  expect(prompt[1]).not.toBe(tok.bos);
  alone.reset();
  const r = await generate(alone, prompt, { maxTokens, sampling });
  const end = r.tokens.findIndex((t) => tok.eog.has(t));
  const ids = end < 0 ? r.tokens : r.tokens.slice(0, end);
  const d = tok.createStreamDecoder({ stripPrefixSpace: true });
  return { prompt, ids, text: ids.map((t) => d.push(t)).join('') + d.flush() };
}

const post = (url: string, body: unknown) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('infer serve: chat completions', () => {
  const convo: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there! Où est la gare?' }];

  it('a non-streamed reply equals greedy generation of the rendered conversation', async () => {
    const want = await direct(convo, 16);
    const r = await client.chat.completions.create({ model, messages: convo as OpenAI.ChatCompletionMessageParam[], max_tokens: 16, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices.length).toBe(1);
    expect(r.choices[0].message.role).toBe('assistant');
    expect((r.choices[0] as unknown as { token_ids: number[] }).token_ids).toEqual(want.ids);
    expect(r.choices[0].message.content).toBe(want.text);
    expect(r.choices[0].finish_reason).toBe(want.ids.length === 16 ? 'length' : 'stop');
    expect(r.usage).toEqual({ prompt_tokens: want.prompt.length, completion_tokens: want.ids.length, total_tokens: want.prompt.length + want.ids.length });
    // max_completion_tokens is the newer name for the same limit.
    const r2 = await client.chat.completions.create({ model, messages: convo as OpenAI.ChatCompletionMessageParam[], max_completion_tokens: 5, temperature: 0 });
    expect((r2.choices[0] as unknown as { token_ids: number[] }).token_ids).toEqual(want.ids.slice(0, 5));
  }, 30_000);

  it('streams a role delta, content deltas that add up to the same text, a finish chunk, usage and [DONE]', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Tell me about 東京.' }, { role: 'assistant', content: 'Sure.' }, { role: 'user', content: 'More!' }];
    // Seeded sampling: the served reply equals the direct one with the same seed (the random weights are peaked, so the text is repetitive).
    const want = await direct(messages, 40, { temperature: 2, seed: 11 });
    const stream = await client.chat.completions.create({ model, messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 40, temperature: 2, seed: 11, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks.every((ch) => ch.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const content = chunks.flatMap((ch) => ch.choices.map((c) => c.delta.content ?? ''));
    expect(content.join('')).toBe(want.text);
    expect(content.some((t) => t.includes('\uFFFD'))).toBe(want.text.includes('\uFFFD'));
    const finishes = chunks.flatMap((ch) => ch.choices.map((c) => c.finish_reason)).filter((f) => f !== null);
    expect(finishes).toEqual([want.ids.length === 40 ? 'length' : 'stop']);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: want.ids.length, prompt_tokens: want.prompt.length });
    const raw = await (await post(srv.url, { messages, max_tokens: 2, stream: true })).text();
    expect(raw.trimEnd().endsWith('data: [DONE]')).toBe(true);
  }, 30_000);

  it('n choices with a seed, and a stop string', async () => {
    const base = { model, messages: convo as OpenAI.ChatCompletionMessageParam[], max_tokens: 6, temperature: 0.9, seed: 7 };
    const a = await client.chat.completions.create({ ...base, n: 2 }), b = await client.chat.completions.create({ ...base, n: 2 });
    expect(a.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
    const want = await direct(convo, 12, { temperature: 2, seed: 5 });
    const cut = want.text.slice(6, 9);
    expect(cut.length).toBe(3);
    {
      const r = await client.chat.completions.create({ model, messages: convo as OpenAI.ChatCompletionMessageParam[], max_tokens: 12, temperature: 2, seed: 5, stop: [cut] });
      expect(r.choices[0].message.content).toBe(want.text.slice(0, want.text.indexOf(cut)));
      expect(r.choices[0].finish_reason).toBe('stop');
    }
  }, 30_000);

  it('bad messages get 400 error objects', async () => {
    const bad: unknown[] = [
      {}, { messages: [] }, { messages: 'hi' }, { messages: [{ role: 'wizard', content: 'x' }] },
      { messages: [{ role: 'user' }] }, { messages: [{ role: 'user', content: 42 }] }, { messages: [null] },
      // The template refuses roles that do not alternate.
      { messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] },
      { messages: [{ role: 'user', content: 'a' }], temperature: 5 },
      { messages: [{ role: 'user', content: 'a' }], max_completion_tokens: -1 },
    ];
    for (const body of bad) {
      const r = await post(srv.url, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      const e = (await r.json()) as { error: { message: string; type: string; param: string | null } };
      expect(e.error.type).toBe('invalid_request_error');
      expect(e.error.message.length).toBeGreaterThan(5);
    }
    await expect(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] })).rejects.toMatchObject({ status: 400 });
    await expect(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'a' }] })).rejects.toMatchObject({ status: 404 });
  }, 30_000);

  it('without a tokenizer: 501 saying why', async () => {
    const r = await post(plain.srv.url, { messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(501);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/no tokenizer/);
  });
});
