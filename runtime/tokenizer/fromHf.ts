// A Tokenizer from a Hugging Face tokenizer.json (+ tokenizer_config.json), mapped onto
// the same two implementations a GGUF file gets, the way llama.cpp's converter maps
// them: byte-level BPE (Llama 3, Qwen 2/3, GPT-2) becomes 'gpt2' with its merges and
// the pre-tokenizer its split regex names; SentencePiece-style BPE with byte_fallback
// (Llama 2, Mistral) becomes 'llama', where a token's score is minus the rank of the
// first merge that builds it, so the score-ordered merge loop replays the merges.
import { VocabTokenizer } from './tokenizer.ts';
import { TokenType, type Tokenizer } from './types.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Every pre-tokenizer / normalizer in a (possibly Sequence) component, flattened. */
function parts(c: Json, key: 'pretokenizers' | 'normalizers'): Json[] {
  if (!c) return [];
  return c.type === 'Sequence' ? (c[key] ?? []).flatMap((x: Json) => parts(x, key)) : [c];
}

/** convert_hf_to_gguf's does_token_look_special: added tokens the model card forgot to mark. */
function looksSpecial(t: string): boolean {
  return ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) || (t.startsWith('<|') && t.endsWith('|>'))
    || (t.startsWith('<｜') && t.endsWith('｜>')) || (t.startsWith('<unused') && t.endsWith('>'));
}

function byteLevelPre(tok: Json): string {
  const pres = parts(tok.pre_tokenizer, 'pretokenizers');
  const split = pres.find((p) => p.type === 'Split')?.pattern?.Regex as string | undefined;
  if (split === LLAMA3_SPLIT) return 'llama-bpe';
  if (split === QWEN2_SPLIT) return 'qwen2';
  if (split === GPT2_SPLIT || (!split && pres.some((p) => p.type === 'ByteLevel' && p.use_regex !== false))) return 'gpt-2';
  throw new Error(`tokenizer.json: unsupported byte-level pre-tokenizer split ${JSON.stringify(split)}`);
}

const tokenContent = (t: Json): string | undefined => (typeof t === 'string' ? t : t?.content);

/** Builds a tokenizer from parsed tokenizer.json (and optionally tokenizer_config.json). */
export function tokenizerFromHf(tokenizerJson: unknown, tokenizerConfigJson?: unknown): Tokenizer {
  const tok = tokenizerJson as Json, cfg = (tokenizerConfigJson ?? {}) as Json;
  const m = tok?.model;
  if (m?.type !== 'BPE') throw new Error(`tokenizer.json: model type ${JSON.stringify(m?.type)} is not supported (BPE only)`);
  const byteLevel = parts(tok.pre_tokenizer, 'pretokenizers').some((p) => p.type === 'ByteLevel') || tok.decoder?.type === 'ByteLevel';
  if (!byteLevel && !m.byte_fallback) throw new Error('tokenizer.json: BPE that is neither byte-level nor byte_fallback is not supported');

  const added: Json[] = tok.added_tokens ?? [];
  let size = 0;
  for (const id of Object.values(m.vocab as Record<string, number>)) size = Math.max(size, id + 1);
  for (const a of added) size = Math.max(size, a.id + 1);
  const tokens = Array.from({ length: size }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(size).fill(TokenType.unused);
  for (const [text, id] of Object.entries(m.vocab as Record<string, number>)) {
    tokens[id] = text;
    types[id] = !byteLevel && /^<0x[0-9A-F]{2}>$/.test(text) ? TokenType.byte : TokenType.normal;
  }
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special || looksSpecial(a.content) ? TokenType.control : TokenType.userDefined;
  }
  const unk = m.unk_token != null ? (m.vocab[m.unk_token] as number | undefined) : undefined;
  if (unk !== undefined) types[unk] = TokenType.unknown;

  // Merges are "a b" strings or [a, b] pairs depending on the tokenizers version.
  const merges: string[] = (m.merges ?? []).map((x: string | [string, string]) => (typeof x === 'string' ? x : `${x[0]} ${x[1]}`));
  const idOf = (t: Json) => { const c = tokenContent(t); return c === undefined ? undefined : tokens.indexOf(c) >= 0 ? tokens.indexOf(c) : undefined; };
  const firstIsBos = (tok.post_processor?.single ?? [])[0]?.SpecialToken !== undefined;
  const template = Array.isArray(cfg.chat_template)
    ? (cfg.chat_template.find((t: Json) => t.name === 'default') ?? cfg.chat_template[0])?.template
    : cfg.chat_template;
  const common = {
    tokens, types, unk, bos: idOf(cfg.bos_token), eos: idOf(cfg.eos_token), pad: idOf(cfg.pad_token),
    addBos: cfg.add_bos_token ?? (firstIsBos ? true : undefined), addEos: cfg.add_eos_token,
    chatTemplate: typeof template === 'string' ? template : undefined,
  };
  if (byteLevel) return new VocabTokenizer({ model: 'gpt2', pre: byteLevelPre(tok), merges, ...common });

  const scores = new Float32Array(size).fill(0);
  const scored = new Set<number>();
  merges.forEach((mg, rank) => {
    const id = m.vocab[mg.replace(' ', '')] as number | undefined;
    if (id !== undefined && !scored.has(id)) { scored.add(id); scores[id] = -rank; }
  });
  // A multi-character token no merge builds must never win a merge: lowest score.
  tokens.forEach((t, id) => { if (!scored.has(id) && types[id] === TokenType.normal && Array.from(t).length > 1) scores[id] = -1e9; });
  const norms = parts(tok.normalizer, 'normalizers');
  const metaspace = parts(tok.pre_tokenizer, 'pretokenizers').find((p) => p.type === 'Metaspace');
  const addSpacePrefix = norms.some((n) => n.type === 'Prepend' && n.prepend === '\u2581')
    || (metaspace !== undefined && (metaspace.prepend_scheme ?? (metaspace.add_prefix_space ? 'always' : 'never')) !== 'never');
  return new VocabTokenizer({ model: 'llama', scores, addSpacePrefix, ...common });
}
