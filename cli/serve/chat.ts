// POST /v1/chat/completions: `messages` checked, rendered with the weights' chat template
// (add_generation_prompt), tokenised as `infer chat` does (no second BOS when the template
// writes one), and generated through the same scheduler and sampling parameters as
// /v1/completions, ending at the tokenizer's end-of-generation ids. The answer is OpenAI's
// `chat.completion`, or `chat.completion.chunk` events: a {role: 'assistant'} delta, the
// content as the streaming decoder completes it (never half a UTF-8 character), a chunk
// with finish_reason, then `data: [DONE]`.
import type { ServerResponse } from 'node:http';
import { chatTemplateFor, ChatTemplateError, type ChatMessage, type ChatTemplate, type Tokenizer } from '../../runtime/tokenizer/index.ts';
import { ApiError, parseCompletion } from './protocol.ts';
import { checkModel, serveChoices, type CompletionContext } from './completions.ts';
import { TextOut } from './textOut.ts';

export interface ChatTemplateState { readonly template: ChatTemplate; readonly bosToken: string; readonly eosToken: string }

/** The weights' chat template, or the 501 that says why there is none (asked once, at start). */
export function chatSetup(tok: Tokenizer | null): ChatTemplateState | ApiError {
  const none = (why: string) => new ApiError(501, `chat completions need ${why}: use POST /v1/completions${tok ? '' : ' with token ids'}`, null, 'chat_template_unavailable');
  if (!tok) return none('a tokenizer and chat template in the weights, and this model has no tokenizer');
  try {
    return chatTemplateFor(tok, "the weights' chat template (tokenizer.chat_template)") ?? none('a chat template in the weights (tokenizer.chat_template), and this model has none');
  } catch (e) {
    if (e instanceof ChatTemplateError) return none(`a chat template this server can render, and ${e.message}`);
    throw e;
  }
}

const ROLES = new Set(['system', 'user', 'assistant']);
const badMessages = (message: string) => new ApiError(400, message, 'messages', 'invalid_value');

/** `messages`: a non-empty array of {role: system|user|assistant, content: text (or text parts)}. */
export function parseMessages(v: unknown): ChatMessage[] {
  if (v === undefined || v === null) throw new ApiError(400, "'messages' is required", 'messages', 'missing_required_parameter');
  if (!Array.isArray(v) || v.length === 0) throw badMessages("'messages' must be a non-empty array of {role, content}");
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw badMessages(`messages[${i}] must be an object {role, content}`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.has(role)) throw badMessages(`messages[${i}].role must be 'system', 'user' or 'assistant', got ${JSON.stringify(role)}`);
    if (typeof content === 'string') return { role, content };
    // Content parts: text only.
    if (Array.isArray(content) && content.length > 0 && content.every((p) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === 'text' && typeof (p as { text?: unknown }).text === 'string')) {
      return { role, content: content.map((p) => (p as { text: string }).text).join('') };
    }
    throw badMessages(`messages[${i}].content must be a string (or an array of {type: 'text', text} parts), got ${JSON.stringify(content)}`);
  });
}

type Body = Record<string, unknown>;

export async function chatCompletions(ctx: CompletionContext & { chat: ChatTemplateState | ApiError }, body: unknown, res: ServerResponse): Promise<void> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
  const b = body as Body;
  const messages = parseMessages(b.messages);
  if (ctx.chat instanceof ApiError) throw ctx.chat;
  const tok = ctx.tokenizer!, chat = ctx.chat;
  for (const key of ['logprobs', 'top_logprobs', 'tools', 'functions', 'response_format'] as const) {
    if (b[key] !== undefined && b[key] !== null && b[key] !== false) throw new ApiError(400, `'${key}' is not supported by this server's chat completions`, key, 'unsupported_parameter');
  }
  let rendered: string;
  try {
    rendered = chat.template.render(messages, { addGenerationPrompt: true, bosToken: chat.bosToken, eosToken: chat.eosToken });
  } catch (e) {
    // raise_exception(...) in the template: roles that do not alternate, a system message it refuses.
    if (e instanceof ChatTemplateError) throw badMessages(e.message);
    throw e;
  }
  // A template that writes BOS itself (Llama 2, Llama 3) must not get a second one from the tokenizer.
  const prompt = tok.encode(rendered, { addSpecial: !(chat.bosToken && rendered.startsWith(chat.bosToken)), parseSpecial: true });
  const m = ctx.scheduler.engine.model;
  // max_completion_tokens (the newer name) or max_tokens; neither: up to the context.
  const maxKey = b.max_completion_tokens !== undefined && b.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const rest: Body = { ...b, prompt, max_tokens: b[maxKey] ?? Math.max(1, m.maxContext - prompt.length) };
  for (const key of ['messages', 'max_completion_tokens', 'logprobs', 'top_logprobs'] as const) delete rest[key];
  let p;
  try { p = parseCompletion(rest, m.vocab, tok); } catch (e) {
    if (e instanceof ApiError && e.param === 'max_tokens' && maxKey === 'max_completion_tokens') throw new ApiError(e.status, e.message.replace(/'max_tokens'/g, "'max_completion_tokens'"), maxKey, e.code);
    throw e;
  }
  checkModel(ctx, body);
  await serveChoices(ctx, p, res, {
    object: 'chat.completion', chunkObject: 'chat.completion.chunk', idPrefix: 'chatcmpl',
    textOut: () => new TextOut(tok, p.stopStrings, { stripPrefixSpace: true }),
    extraStops: [...tok.eog],
    start: (c) => ({ index: c.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
    delta: (c, text, finish) => ({ index: c.index, delta: text === '' && finish !== null ? {} : { content: text }, logprobs: null, finish_reason: finish }),
    choice: (c, finish) => ({ index: c.index, message: { role: 'assistant', content: c.text.text }, logprobs: null, finish_reason: finish, token_ids: c.ids }),
  });
}
