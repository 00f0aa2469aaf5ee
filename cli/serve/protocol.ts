// The OpenAI completions protocol at the edge of `infer serve`: error objects, and the
// request body checked field by field into what the scheduler takes. Every refusal is
// an ApiError with the status and the `{"error": {message, type, param, code}}` body
// OpenAI's clients parse; a request never reaches the scheduler half-checked.
import type { Tokenizer } from '../../runtime/tokenizer/index.ts';

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status === 401 ? 'authentication_error' : status >= 500 ? 'server_error' : 'invalid_request_error') {
    super(message);
  }

  body(): string {
    return JSON.stringify({ error: { message: this.message, type: this.type, param: this.param, code: this.code } });
  }
}

/** A checked /v1/completions request. */
export interface CompletionParams {
  readonly prompts: number[][];
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly seed: number | undefined;
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly logprobs: number | undefined;
  readonly stopTokens: number[];
  readonly stopStrings: string[];
}

const MAX_LOGPROBS = 20;
const MAX_N = 16;

type Body = Record<string, unknown>;

const bad = (param: string, message: string) => new ApiError(400, message, param, 'invalid_value');

function num(b: Body, key: string, fallback: number, ok: (v: number) => boolean, want: string): number {
  const v = b[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(key, `'${key}' must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

const int = (b: Body, key: string, fallback: number, min: number, max: number) =>
  num(b, key, fallback, (v) => Number.isInteger(v) && v >= min && v <= max, `an integer in ${min}..${max}`);

function tokenIds(v: unknown[], vocab: number, param: string): number[] {
  for (const id of v) if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocab) throw bad(param, `'${param}' holds ${JSON.stringify(id)}, not a token id in 0..${vocab - 1}`);
  return v as number[];
}

/** The prompts: token ids, arrays of them, or (with a tokenizer) text or texts. */
function prompts(v: unknown, vocab: number, tok: Tokenizer | null): number[][] {
  const text = (s: string): number[] => {
    if (!tok) throw new ApiError(400, 'this model has no tokenizer (its weights carry none): give the prompt as an array of token ids, e.g. "prompt": [1, 2, 3]', 'prompt', 'tokenizer_unavailable');
    return tok.encode(s, { addSpecial: true });
  };
  if (typeof v === 'string') return [text(v)];
  if (!Array.isArray(v) || v.length === 0) throw bad('prompt', "'prompt' must be a string, an array of token ids, or an array of those (non-empty)");
  if (v.every((x) => typeof x === 'number')) return [tokenIds(v, vocab, 'prompt')];
  return v.map((p) => {
    if (typeof p === 'string') return text(p);
    if (Array.isArray(p) && p.length > 0) return tokenIds(p, vocab, 'prompt');
    throw bad('prompt', "'prompt' must be a string, an array of token ids, or an array of those (non-empty)");
  });
}

/** `stop`: token ids (ours), or strings when a tokenizer can render text to search. */
function stops(v: unknown, vocab: number, tok: Tokenizer | null): { tokens: number[]; strings: string[] } {
  if (v === undefined || v === null) return { tokens: [], strings: [] };
  const list = Array.isArray(v) ? v : [v];
  const tokens: number[] = [], strings: string[] = [];
  for (const s of list) {
    if (typeof s === 'number') tokens.push(...tokenIds([s], vocab, 'stop'));
    else if (typeof s === 'string' && s.length > 0) {
      if (!tok) throw new ApiError(400, 'this model has no tokenizer: give `stop` as token ids', 'stop', 'tokenizer_unavailable');
      strings.push(s);
    } else throw bad('stop', `'stop' must be token ids or non-empty strings, got ${JSON.stringify(s)}`);
  }
  return { tokens, strings };
}

export function parseCompletion(raw: unknown, vocab: number, tok: Tokenizer | null): CompletionParams {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ApiError(400, 'the request body must be a JSON object');
  const b = raw as Body;
  if (b.prompt === undefined) throw new ApiError(400, "'prompt' is required", 'prompt', 'missing_required_parameter');
  for (const key of ['echo', 'suffix'] as const) if (b[key] !== undefined && b[key] !== null && b[key] !== false) throw new ApiError(400, `'${key}' is not supported by this server`, key, 'unsupported_parameter');
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw bad('stream', "'stream' must be a boolean");
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw bad('stream_options', "'stream_options' must be an object");
  const s = stops(b.stop, vocab, tok);
  const lp = b.logprobs;
  return {
    prompts: prompts(b.prompt, vocab, tok),
    maxTokens: int(b, 'max_tokens', 16, 0, 1 << 20),
    temperature: num(b, 'temperature', 1, (v) => v >= 0 && v <= 2, 'a number in [0, 2]'),
    topP: num(b, 'top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    topK: int(b, 'top_k', 0, 0, vocab),
    seed: b.seed === undefined || b.seed === null ? undefined : int(b, 'seed', 0, 0, 2 ** 32 - 1),
    n: int(b, 'n', 1, 1, MAX_N),
    stream: b.stream === true,
    includeUsage: !!(so && (so as Body).include_usage === true),
    logprobs: lp === undefined || lp === null || lp === false ? undefined : lp === true ? 0 : int(b, 'logprobs', 0, 0, MAX_LOGPROBS),
    stopTokens: s.tokens,
    stopStrings: s.strings,
  };
}
