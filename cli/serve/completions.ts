// POST /v1/completions: a checked request becomes one scheduler ticket per prompt and
// choice; the answer is one JSON object, or Server-Sent Events in OpenAI's chunk format
// ending with `data: [DONE]`. Besides OpenAI's fields every choice carries `token_ids`
// (the generated ids: without a tokenizer the text is those ids, space-separated).
// A client that disconnects cancels its tickets, which frees their KV pages.
import type { ServerResponse } from 'node:http';
import type { Tokenizer } from '../../runtime/tokenizer/index.ts';
import { QueueFullError, RequestTooLargeError, ShuttingDownError, type Completion, type GeneratedToken, type Scheduler, type Ticket } from '../../runtime/serve/scheduler.ts';
import { ApiError, parseCompletion, type CompletionParams } from './protocol.ts';
import { TextOut } from './textOut.ts';

export interface CompletionContext {
  readonly scheduler: Scheduler;
  readonly modelId: string;
  readonly tokenizer: Tokenizer | null;
}

let nextId = 0;

export interface Choice {
  readonly index: number;
  readonly prompt: number[];
  readonly text: TextOut;
  readonly ids: number[];
  readonly lp: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]; text_offset: number[] };
  ticket?: Ticket;
}

function finishReason(c: Completion, choice: Choice): string {
  if (choice.text.stopped || c.finish === 'stop_token') return 'stop';
  if (c.finish === 'max_tokens' || c.finish === 'max_context' || c.finish === 'kv_exhausted') return 'length';
  return c.finish;
}

export async function completions(ctx: CompletionContext, body: unknown, res: ServerResponse): Promise<void> {
  const vocab = ctx.scheduler.engine.model.vocab;
  const p = parseCompletion(body, vocab, ctx.tokenizer);
  checkModel(ctx, body);
  const tokText = (t: number) => (ctx.tokenizer ? ctx.tokenizer.decode([t], { special: true, stripPrefixSpace: false }) : String(t));
  const tops = (t: GeneratedToken) => Object.fromEntries(t.top.map((x) => [tokText(x.id), x.logprob]));
  await serveChoices(ctx, p, res, {
    object: 'text_completion', chunkObject: 'text_completion', idPrefix: 'cmpl',
    textOut: () => new TextOut(ctx.tokenizer, p.stopStrings),
    onToken: (c, t, text) => {
      if (p.logprobs !== undefined) { c.lp.tokens.push(tokText(t.id)); c.lp.token_logprobs.push(t.logprob!); c.lp.top_logprobs.push(tops(t)); c.lp.text_offset.push(c.text.length - text.length); }
    },
    delta: (c, text, finish, t) => ({ index: c.index, text, finish_reason: finish, token_ids: t ? [t.id] : [],
      logprobs: p.logprobs === undefined || !t ? null : { tokens: [tokText(t.id)], token_logprobs: [t.logprob], top_logprobs: [tops(t)], text_offset: [c.text.length - text.length] } }),
    choice: (c, finish) => ({ index: c.index, text: c.text.text, finish_reason: finish, token_ids: c.ids, logprobs: p.logprobs === undefined ? null : c.lp }),
  });
}

export function checkModel(ctx: CompletionContext, body: unknown): void {
  const model = (body as { model?: unknown }).model;
  if (model !== undefined && model !== ctx.modelId) throw new ApiError(404, `the model '${String(model)}' does not exist; this server serves '${ctx.modelId}'`, 'model', 'model_not_found');
}

/** How one endpoint writes its answer; the generation itself is shared (serveChoices). */
export interface ChoiceFormat {
  readonly object: string;
  readonly chunkObject: string;
  readonly idPrefix: string;
  readonly textOut: () => TextOut;
  /** Ids that end a choice besides the request's stop tokens (a chat's end-of-generation ids). */
  readonly extraStops?: readonly number[];
  /** The first streamed chunk's choice for each choice (a chat's {role: 'assistant'} delta). */
  readonly start?: (c: Choice) => unknown;
  readonly onToken?: (c: Choice, t: GeneratedToken, text: string) => void;
  /** A streamed chunk's choice: new text, or the end with its finish reason. */
  readonly delta: (c: Choice, text: string, finish: string | null, t?: GeneratedToken) => unknown;
  /** A non-streamed answer's choice. */
  readonly choice: (c: Choice, finish: string) => unknown;
}

/** Runs every prompt x n choice of a checked request through the scheduler and answers, streamed or not. */
export async function serveChoices(ctx: CompletionContext, p: CompletionParams, res: ServerResponse, fmt: ChoiceFormat): Promise<void> {
  for (const prompt of p.prompts) {
    try { ctx.scheduler.check(prompt); } catch (e) {
      if (e instanceof RequestTooLargeError) throw new ApiError(400, e.message, 'prompt', 'context_length_exceeded');
      throw e;
    }
  }
  const id = `${fmt.idPrefix}-${Date.now().toString(36)}-${nextId++}`;
  const created = Math.floor(Date.now() / 1000);
  const choices: Choice[] = p.prompts.flatMap((prompt, i) => Array.from({ length: p.n }, (_, j) => ({
    index: i * p.n + j, prompt, ids: [], text: fmt.textOut(),
    lp: { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
  })));
  const chunk = (choice: unknown) => ({ id, object: fmt.chunkObject, created, model: ctx.modelId, choices: [choice] });
  const send = (o: unknown) => { if (!res.destroyed) res.write(`data: ${JSON.stringify(o)}\n\n`); };
  const stopTokens = [...p.stopTokens, ...(fmt.extraStops ?? [])];

  // One seed per choice: the request's, or a fresh one, plus the choice's index so n > 1 differ.
  const seed = p.seed ?? Math.floor(Math.random() * 2 ** 32);
  const submitted: Ticket[] = [];
  try {
    for (const c of choices) {
      c.ticket = ctx.scheduler.submit({
        prompt: c.prompt, maxTokens: p.maxTokens, stopTokens, logprobs: p.logprobs,
        sampling: { temperature: p.temperature, topP: p.topP, topK: p.topK, seed: (seed + (c.index % p.n)) >>> 0 },
        onToken: (t) => {
          if (c.text.stopped) return;
          c.ids.push(t.id);
          const text = c.text.push(t.id);
          if (c.text.stopped) c.ticket?.cancel();
          fmt.onToken?.(c, t, text);
          if (p.stream && (text !== '' || fmt.start === undefined)) send(chunk(fmt.delta(c, text, null, t)));
        },
      });
      submitted.push(c.ticket);
    }
  } catch (e) {
    for (const t of submitted) t.cancel();
    if (e instanceof QueueFullError) throw new ApiError(429, e.message, null, 'rate_limit_exceeded');
    if (e instanceof ShuttingDownError) throw new ApiError(503, e.message, null, 'shutting_down');
    throw e;
  }
  // The client went away before the answer was complete: its sequences end now.
  res.on('close', () => { if (!res.writableFinished) for (const t of submitted) t.cancel(); });
  if (p.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    if (fmt.start) for (const c of choices) send(chunk(fmt.start(c)));
  }
  const done = await Promise.all(choices.map(async (c) => {
    const r = await c.ticket!.done;
    const rest = c.text.flush();
    if (p.stream) {
      if (r.finish === 'error') send({ error: { message: r.message ?? 'generation failed', type: 'server_error', param: null, code: 'generation_failed' } });
      if (rest !== '' && fmt.start) send(chunk(fmt.delta(c, rest, null)));
      send(chunk(fmt.delta(c, fmt.start ? '' : rest, finishReason(r, c))));
    }
    return r;
  }));
  const usage = { prompt_tokens: p.prompts.reduce((a, q) => a + q.length, 0), completion_tokens: choices.reduce((a, c) => a + c.ids.length, 0), total_tokens: 0 };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  if (p.stream) {
    if (p.includeUsage) send({ id, object: fmt.chunkObject, created, model: ctx.modelId, choices: [], usage });
    if (!res.destroyed) res.end('data: [DONE]\n\n');
    return;
  }
  const failed = done.find((r) => r.finish === 'error');
  if (failed) throw new ApiError(500, failed.message ?? 'generation failed', null, 'generation_failed');
  json(res, 200, { id, object: fmt.object, created, model: ctx.modelId, usage, choices: choices.map((c, i) => fmt.choice(c, finishReason(done[i], c))) });
}

export function json(res: ServerResponse, status: number, o: unknown): void {
  if (res.destroyed) return;
  const body = JSON.stringify(o);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export type { CompletionParams };
