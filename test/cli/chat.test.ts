// `infer chat`: driven through a pipe (stdin lines) on the CPU backend with a random-weight
// llama around the real Llama 2 vocabulary and Llama 2's chat template; the KV cache keeps
// the conversation (a later turn feeds only what the cache lacks, and replies exactly as a
// fresh sequence would); Ctrl-C stops a reply, not the chat; end-of-generation ids stop.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeExampleModel, type ExampleModel } from '../../bench/fixtures/exampleModel.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { openEngines, type OpenEngines } from '../../cli/openEngine.ts';
import { ChatSession } from '../../cli/chat.ts';
import { loadTokenizer } from '../../cli/text.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { generate } from '../../runtime/engine.ts';
import { chatTemplateFor, type Tokenizer } from '../../runtime/tokenizer/index.ts';

let model: ExampleModel, tok: Tokenizer;
let opened: OpenEngines[] = [];

beforeAll(() => {
  model = writeExampleModel(mkdtempSync(join(tmpdir(), 'infer-chat-')));
  tok = loadTokenizer(model.gguf).tokenizer;
}, 60_000);
afterAll(() => { for (const o of opened) o.close(); });

async function cpuEngine() {
  const c = compileSpec(readFileSync(model.spec, 'utf8'), model.spec, {});
  const o = await openEngines('cpu', [{ program: c.program!, graph: c.graph!, weights: GgufWeights.load(model.gguf, c.program!.params) }], { maxSequences: 1 });
  opened.push(o);
  return o.engines[0];
}

/** Runs `infer chat` with stdin lines; `onOut` may write more input or signal the process. */
function chat(lines: string[], onOut?: (out: string, c: ReturnType<typeof spawn>) => void, extra: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['bin/infer.mjs', 'chat', model.spec, '--weights', model.gguf, '--backend', 'cpu', ...extra],
      { env: { ...process.env, INFER_FROM_SOURCE: '1', INFER_CHAT_DEBUG: '1' } });
    let out = '', err = '';
    c.stdout!.on('data', (d) => { out += d; onOut?.(out, c); });
    c.stderr!.on('data', (d) => { err += d; });
    c.on('close', (code) => done({ code, out, err }));
    c.stdin!.write(lines.map((l) => l + '\n').join(''));
  });
}

describe('infer chat', () => {
  it('two turns through a pipe: one reply line each, the second turn reuses the cached conversation', async () => {
    const r = await chat(['Hello there', 'How are you?', '/exit'], undefined, ['--max-tokens', '6', '--system', 'Be brief']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n').length).toBe(3);
    const turns = [...r.err.matchAll(/\[chat\] prompt (\d+) tokens, (\d+) from the cache/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(turns.length).toBe(2);
    expect(turns[0][1]).toBe(0);
    expect(turns[1][1]).toBeGreaterThanOrEqual(turns[0][0]);
  }, 90_000);

  it('Ctrl-C stops a reply and the chat goes on; an empty line ends it', async () => {
    let sent = false;
    const r = await chat(['Tell me a long story'], (out, c) => {
      if (sent) return;
      sent = true;
      c.kill('SIGINT');
      c.stdin!.write('And then?\n\n');
    }, ['--max-tokens', '150']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/\(reply stopped\)/);
    expect(r.err.match(/\[chat\] prompt/g)?.length).toBe(2);
  }, 90_000);

  it('a later turn replies exactly as a fresh sequence over the whole conversation', async () => {
    const chatT = chatTemplateFor(tok, 'test')!;
    const render = (msgs: { role: string; content: string }[]) => tok.encode(chatT.template.render(msgs, { bosToken: chatT.bosToken, eosToken: chatT.eosToken }), { parseSpecial: true });
    const sampling = { temperature: 0 };
    const never = new AbortController().signal;
    const kept = new ChatSession(await cpuEngine(), tok, sampling);
    const first = await kept.reply(render([{ role: 'user', content: 'Hi' }]), 5, () => {}, never);
    const convo = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: tok.decode(first.ids) }, { role: 'user', content: 'More, please.' }];
    const second = await kept.reply(render(convo), 5, () => {}, never);
    expect(kept.lastReused).toBeGreaterThan(5);
    const fresh = await new ChatSession(await cpuEngine(), tok, sampling).reply(render(convo), 5, () => {}, never);
    expect(second.ids).toEqual(fresh.ids);
  }, 90_000);

  it("generation stops at the tokenizer's end-of-generation ids (stop 'eos')", async () => {
    const engine = await cpuEngine();
    const prompt = tok.encode('Once upon a time', { addSpecial: true });
    const free = await generate(engine, prompt, { maxTokens: 4 });
    const stop = free.tokens[1];
    const stopped = await generate(engine, prompt, { maxTokens: 4, stopIds: new Set([stop]) });
    expect(stopped.tokens).toEqual(free.tokens.slice(0, free.tokens.indexOf(stop) + 1));
    expect(stopped.stats.stop_reason).toBe('eos');
  }, 60_000);
});
