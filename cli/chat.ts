// `infer chat SPEC --weights F`: a terminal chat. Each turn re-renders the file's chat
// template over the whole conversation and feeds only the tokens past what the KV cache
// already holds (the longest common prefix of the new rendering and the cached tokens;
// when the rendering changed earlier, the sequence rolls back to there, at worst to 0).
// Replies stream through the decoder. Ctrl-C stops a reply, not the program; an empty
// line, /exit or the end of stdin ends the chat.
import { createInterface } from 'node:readline';
import type { Graph } from '../compiler/ir/graph.ts';
import type { Program } from '../program/program.ts';
import { Sampler, type SamplingOptions } from '../runtime/sampling.ts';
import { yieldToEvents } from '../runtime/stop.ts';
import type { Engine } from '../runtime/engine.ts';
import { chatTemplateFor, type ChatMessage, type Tokenizer } from '../runtime/tokenizer/index.ts';
import { openEngines } from './openEngine.ts';
import { engineAndSampling, loadWeights, RunError } from './run.ts';
import { textStreamer, tokenizerForRun } from './text.ts';
import { parseInteger } from './args.ts';
import { paramSummary } from './outcome.ts';
import type { Io } from './main.ts';

export interface ChatFlags {
  weights?: string; backend?: string; system?: string; 'max-tokens'?: string; temperature?: string; 'top-k'?: string; 'top-p'?: string; seed?: string;
  'f32-weights'?: boolean;
}

/** Where the conversation's tokens stand in the engine's default sequence. */
export class ChatSession {
  /** Tokens whose K/V the cache holds, in order. */
  private cached: number[] = [];
  /** Of the last turn's prompt tokens, how many came from the cache (for tests and --verbose). */
  lastReused = 0;

  constructor(private readonly engine: Engine, private readonly tok: Tokenizer, private readonly sampling: SamplingOptions) {}

  /**
   * Feeds `ids` (the whole conversation, rendered) after the longest prefix the cache already
   * holds, then samples up to maxTokens, streaming each to onToken. Returns the reply's ids
   * (an end-of-generation id is not included) and whether it was cut short by `signal`.
   */
  async reply(ids: readonly number[], maxTokens: number, onToken: (id: number) => void, signal: AbortSignal): Promise<{ ids: number[]; cancelled: boolean }> {
    const m = this.engine.model;
    let keep = 0;
    while (keep < this.cached.length && keep < ids.length - 1 && this.cached[keep] === ids[keep]) keep++;
    if (keep === 0) this.engine.reset();
    this.lastReused = keep;
    this.cached = ids.slice(0, keep);
    const sampler = new Sampler(this.sampling);
    let row: Float32Array | undefined;
    // The suffix in chunks the engine accepts; positions continue the cached prefix (forward rolls back past it).
    for (let start = keep; start < ids.length; start += this.engine.maxTokensPerForward) {
      const end = Math.min(ids.length, start + this.engine.maxTokensPerForward);
      row = await this.engine.forward(Int32Array.from(ids.slice(start, end)), Int32Array.from({ length: end - start }, (_, i) => start + i), { rows: 'last' });
      this.cached.push(...ids.slice(start, end));
    }
    const out: number[] = [];
    while (out.length < maxTokens) {
      await yieldToEvents();
      if (signal.aborted) return { ids: out, cancelled: true };
      const id = sampler.sample(row!);
      if (this.tok.eog.has(id) || id === m.eos) break;
      out.push(id);
      onToken(id);
      if (this.cached.length >= m.maxContext) break;
      row = await this.engine.forward(Int32Array.of(id), Int32Array.of(this.cached.length), { rows: 'last' });
      this.cached.push(id);
    }
    return { ids: out, cancelled: false };
  }
}

export async function chatCommand(c: { program: Program; graph: Graph }, f: ChatFlags, io: Io, input: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const { program, graph } = c;
  const m = program.model;
  const { backend, sampling } = engineAndSampling(f);
  const maxTokens = parseInteger('max-tokens', f['max-tokens'], 256, 1);
  const { tokenizer: tok, source } = tokenizerForRun(f.weights, 'chat', m.name);
  const chat = chatTemplateFor(tok, `the chat template of ${source}`);
  if (!chat) throw new RunError(`${source} carries no chat template (tokenizer.chat_template): use 'infer run --prompt' for plain completion`);
  const weights = await loadWeights(program, f.weights, '--weights', io, false);
  const { engines: [engine], close } = await openEngines(backend, [{ program, graph, weights }], { maxSequences: 1 });
  const session = new ChatSession(engine, tok, sampling);
  const messages: ChatMessage[] = f.system ? [{ role: 'system', content: f.system }] : [];
  const tty = Boolean((input as { isTTY?: boolean }).isTTY);
  io.err(`${m.name}: ${paramSummary(program.params)}; backend ${backend}. An empty line or /exit ends the chat; Ctrl-C stops a reply.\n`);

  // Ctrl-C: stops the reply in progress; at the prompt, a second one in a row quits.
  let current: AbortController | null = null, armed = false;
  const rl = createInterface({ input, terminal: tty });
  const onSigint = (): void => {
    if (current) { current.abort(); return; }
    if (armed) { rl.close(); return; }
    armed = true;
    io.err('\n(Ctrl-C again, an empty line or /exit to quit)\n');
  };
  process.on('SIGINT', onSigint);
  rl.on('SIGINT', onSigint);
  const prompt = () => { if (tty) io.err('> '); };
  try {
    prompt();
    for await (const raw of rl) {
      armed = false;
      const line = raw.trim();
      if (line === '' || line === '/exit') break;
      messages.push({ role: 'user', content: line });
      const rendered = chat.template.render(messages, { addGenerationPrompt: true, bosToken: chat.bosToken, eosToken: chat.eosToken });
      // A template that writes BOS itself (Llama 2, Llama 3) must not get a second one from the tokenizer.
      const ids = tok.encode(rendered, { addSpecial: !(chat.bosToken && rendered.startsWith(chat.bosToken)), parseSpecial: true });
      if (ids.length >= m.maxContext) {
        io.err(`infer: the conversation (${ids.length} tokens) no longer fits ${m.name}'s context of ${m.maxContext}: starting over\n`);
        messages.splice(f.system ? 1 : 0);
        prompt();
        continue;
      }
      current = new AbortController();
      const stream = textStreamer(tok, io.out);
      const r = await session.reply(ids, Math.min(maxTokens, m.maxContext - ids.length), (id) => stream.push(id), current.signal);
      current = null;
      stream.end();
      io.out('\n');
      if (r.cancelled) io.err('(reply stopped)\n');
      messages.push({ role: 'assistant', content: tok.decode(r.ids) });
      if (process.env.INFER_CHAT_DEBUG === '1') io.err(`[chat] prompt ${ids.length} tokens, ${session.lastReused} from the cache\n`);
      prompt();
    }
  } finally {
    process.off('SIGINT', onSigint);
    rl.close();
    close();
  }
  return 0;
}
