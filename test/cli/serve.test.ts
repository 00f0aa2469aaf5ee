// `infer serve` through the official openai client (and raw fetch for what a client
// never sends): completions streamed and not, equal to the single-run greedy output;
// sampling, stops and logprobs; every error an OpenAI error object with its status;
// the process itself drains on SIGTERM and exits 0.
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, SPEC, serve, settled, single, type Served, type WithIds } from './serveFixture.ts';
import { TextOut } from '../../cli/serve/textOut.ts';

let s: Served;
beforeAll(async () => { s = await serve(); });
afterAll(async () => { await s.srv.close(1000); });

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${s.srv.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

describe('infer serve', () => {
  it('lists the model and reports health', async () => {
    const models = await s.client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect(await (await fetch(`${s.srv.url}/health`)).json()).toMatchObject({ status: 'ok' });
  });

  it('non-streamed greedy completions equal the single run, with usage', async () => {
    for (const [prompt, max] of [[[1, 2, 3], 12], [[7], 5], [[5, 9, 11, 200, 3, 4], 20]] as const) {
      const r = await s.client.completions.create({ model: MODEL, prompt: [...prompt], max_tokens: max, temperature: 0 });
      const want = await single([...prompt], max);
      expect((r.choices[0] as unknown as WithIds).token_ids).toEqual(want);
      expect(r.choices[0].text).toBe(want.join(' '));
      expect(r.choices[0].finish_reason).toBe(want.length === max ? 'length' : 'stop');
      expect(r.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: want.length, total_tokens: prompt.length + want.length });
    }
    await settled(s);
  });

  it('streams chunks that add up to the same completion, then usage and [DONE]', async () => {
    const stream = await s.client.completions.create({ model: MODEL, prompt: [1, 2, 3], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const ids: number[] = [];
    let text = '', finish: string | null = null, usage = null;
    for await (const ch of stream) {
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) { ids.push(...(c as unknown as WithIds).token_ids); text += c.text; finish = c.finish_reason ?? finish; }
    }
    expect(ids).toEqual(await single([1, 2, 3], 12));
    expect(text).toBe(ids.join(' '));
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ completion_tokens: 12 });
    const raw = await (await post('/v1/completions', JSON.stringify({ prompt: [4, 5], max_tokens: 2, stream: true }))).text();
    expect(raw.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('several prompts, seeded sampling, stop tokens and logprobs', async () => {
    const r = await s.client.completions.create({ model: MODEL, prompt: [[1, 2], [3, 4, 5]], max_tokens: 6, temperature: 0 });
    expect(r.choices.map((c) => (c as unknown as WithIds).token_ids)).toEqual([await single([1, 2], 6), await single([3, 4, 5], 6)]);
    const sampled = { model: MODEL, prompt: [9, 8, 7], max_tokens: 10, temperature: 0.9, top_p: 0.95, seed: 42 };
    const a = await s.client.completions.create(sampled), b = await s.client.completions.create(sampled);
    expect(a.choices[0].text).toBe(b.choices[0].text);
    expect((a.choices[0] as unknown as WithIds).token_ids).toEqual(await single([9, 8, 7], 10, { temperature: 0.9, topP: 0.95, seed: 42 }));
    const want = await single([1, 2, 3], 12);
    const st = await s.client.completions.create({ model: MODEL, prompt: [1, 2, 3], max_tokens: 12, temperature: 0, stop: [want[3]] as unknown as string[] });
    expect((st.choices[0] as unknown as WithIds).token_ids).toEqual(want.slice(0, want.indexOf(want[3])));
    expect(st.choices[0].finish_reason).toBe('stop');
    const lp = await s.client.completions.create({ model: MODEL, prompt: [1, 2, 3], max_tokens: 3, temperature: 0, logprobs: 2 });
    const l = lp.choices[0].logprobs!;
    expect(l.tokens).toEqual(want.slice(0, 3).map(String));
    expect(l.token_logprobs!.every((x) => x < 0)).toBe(true);
    expect(l.top_logprobs!.every((t) => Object.keys(t).length === 2)).toBe(true);
    await settled(s);
  });

  it('answers every bad request with an OpenAI error object and keeps serving', async () => {
    const cases: [Promise<Response>, number, string | null][] = [
      [post('/v1/completions', '{"prompt": [1, 2'), 400, null],
      [post('/v1/completions', JSON.stringify({ prompt: [1], max_tokens: 'many' })), 400, 'max_tokens'],
      [post('/v1/completions', JSON.stringify({ prompt: [1, 999] })), 400, 'prompt'],
      [post('/v1/completions', JSON.stringify({ prompt: Array(600).fill(1) })), 400, 'prompt'],
      [post('/v1/completions', JSON.stringify({ prompt: 'hello' })), 400, 'prompt'],
      [post('/v1/completions', JSON.stringify({ model: 'gpt-4', prompt: [1] })), 404, 'model'],
      [post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })), 501, null],
      [fetch(`${s.srv.url}/v1/engines`), 404, null],
    ];
    for (const [p, status, param] of cases) {
      const r = await p;
      expect(r.status).toBe(status);
      const e = (await r.json() as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
      expect(e.message.length).toBeGreaterThan(5);
      expect(e.param).toBe(param);
      expect(typeof e.type).toBe('string');
    }
    const text = await (await post('/v1/completions', JSON.stringify({ prompt: 'hello' }))).json() as { error: { message: string } };
    expect(text.error.message).toMatch(/no tokenizer/);
    const ok = await s.client.completions.create({ model: MODEL, prompt: [1, 2, 3], max_tokens: 4, temperature: 0 });
    expect(ok.choices[0].text.length).toBeGreaterThan(0);
  });

  it('checks the API key (401) and bounds the queue (429)', async () => {
    const k = await serve({ apiKey: 'sekrit', maxBatch: 1, kvPages: 1, queue: 1 });
    try {
      const wrong = new OpenAI({ baseURL: `${k.srv.url}/v1`, apiKey: 'nope', maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      // One running, one waiting: the rest of a burst of six is refused with 429.
      const burst = await Promise.allSettled(Array.from({ length: 6 }, () => k.client.completions.create({ model: MODEL, prompt: [1, 2], max_tokens: 200, temperature: 0 })));
      const refused = burst.filter((b) => b.status === 'rejected');
      expect(refused.length).toBeGreaterThan(0);
      for (const b of refused) expect((b as PromiseRejectedResult).reason).toBeInstanceOf(OpenAI.RateLimitError);
      for (const b of burst) if (b.status === 'fulfilled') expect((b.value.choices[0] as unknown as WithIds).token_ids).toEqual(await single([1, 2], 200));
      expect(await (await fetch(`${k.srv.url}/metrics`)).text()).toMatch(/infer_requests_rejected_total [1-9]/);
      await settled(k);
    } finally { await k.srv.close(1000); }
  });

  it('serves /metrics in the Prometheus text format', async () => {
    const m = await (await fetch(`${s.srv.url}/metrics`)).text();
    for (const name of ['infer_requests_running 0', 'infer_requests_waiting 0', 'infer_kv_pages_used 0', 'infer_kv_pages_free 8', 'infer_batch_size',
      'infer_generated_tokens_total', 'infer_time_to_first_token_seconds_bucket{le="+Inf"}', 'infer_inter_token_latency_seconds_count']) expect(m).toContain(name);
  });

  it('the infer serve process finishes a running request on SIGTERM and exits 0', async () => {
    const p = spawn(process.execPath, ['bin/infer.mjs', 'serve', SPEC, '--backend', 'cpu', '--port', '0'], { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no server line: ${err}`)), 30_000);
      p.stderr.on('data', (b: Buffer) => { err += b; const m = /on (http:\/\/\S+)/.exec(err); if (m) { clearTimeout(t); resolve(m[1]); } });
    });
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const stream = await client.completions.create({ model: MODEL, prompt: [1, 2, 3], max_tokens: 300, temperature: 0, stream: true });
    const ids: number[] = [];
    let finish: string | null = null;
    for await (const ch of stream) {
      if (ids.length === 0) p.kill('SIGTERM');
      for (const c of ch.choices) { ids.push(...(c as unknown as WithIds).token_ids); finish = c.finish_reason ?? finish; }
    }
    expect(ids).toEqual(await single([1, 2, 3], 300));
    expect(finish).not.toBeNull();
    expect(await exited).toBe(0);
    expect(err).toMatch(/SIGTERM/);
  });

  it('cuts text at the first stop string, holding back what may start one', () => {
    const t = new TextOut(null, [' 7 9', ' 8']);
    expect([t.push(5), t.push(7)]).toEqual(['', '']); // the last 3 characters may begin ' 7 9': held back
    expect(t.push(9)).toBe('5');
    expect([t.text, t.stopped]).toEqual(['5', true]);
    const u = new TextOut(null, ['x']);
    expect([u.push(1), u.push(2), u.flush()]).toEqual(['1', ' 2', '']);
  });
});
