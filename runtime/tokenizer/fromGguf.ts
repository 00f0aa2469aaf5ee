// A Tokenizer from GGUF metadata (GgufFile.metadata): the tokenizer.ggml.* keys that
// llama.cpp reads. Only the metadata map is needed, so a page that parsed the
// header itself can use this too (the import below is types only).
import type { GgufValue } from '../weights/ggufTypes.ts';
import { VocabTokenizer } from './tokenizer.ts';
import type { Tokenizer } from './types.ts';

type Meta = ReadonlyMap<string, GgufValue>;

function fail(key: string, want: string, v: GgufValue): never {
  throw new Error(`GGUF metadata '${key}': expected ${want}, got ${v.type === 'array' ? `an array of ${v.itemType}` : v.type}`);
}

function str(m: Meta, key: string): string | undefined {
  const v = m.get(key);
  if (v === undefined) return undefined;
  return v.type === 'string' ? v.value : fail(key, 'a string', v);
}

function num(m: Meta, key: string): number | undefined {
  const v = m.get(key);
  if (v === undefined) return undefined;
  if (v.type === 'u64' || v.type === 'i64') return Number(v.value);
  if (v.type === 'string' || v.type === 'bool' || v.type === 'array') fail(key, 'a number', v);
  return Number(v.value);
}

function bool(m: Meta, key: string): boolean | undefined {
  const v = m.get(key);
  if (v === undefined) return undefined;
  return v.type === 'bool' ? v.value : fail(key, 'a bool', v);
}

function strings(m: Meta, key: string): readonly string[] | undefined {
  const v = m.get(key);
  if (v === undefined) return undefined;
  return v.type === 'array' && v.itemType === 'string' ? v.value : fail(key, 'an array of strings', v);
}

function numbers(m: Meta, key: string): ArrayLike<number> | undefined {
  const v = m.get(key);
  if (v === undefined) return undefined;
  if (v.type !== 'array' || v.itemType === 'string' || v.itemType === 'bool' || v.itemType === 'array') fail(key, 'a numeric array', v);
  if (v.itemType === 'u64' || v.itemType === 'i64') return Array.from(v.value as BigInt64Array, Number);
  return v.value as ArrayLike<number>;
}

/** Builds the tokenizer a GGUF file describes ('llama' SentencePiece or 'gpt2' byte-level BPE). */
export function tokenizerFromGguf(metadata: Meta): Tokenizer {
  const k = (name: string) => `tokenizer.ggml.${name}`;
  const model = str(metadata, k('model'));
  if (model !== 'llama' && model !== 'gpt2') throw new Error(`tokenizer.ggml.model '${model ?? '(missing)'}' is not supported (llama, gpt2)`);
  const tokens = strings(metadata, k('tokens'));
  if (!tokens) throw new Error('GGUF metadata has no tokenizer.ggml.tokens');
  const scores = numbers(metadata, k('scores')), types = numbers(metadata, k('token_type'));
  for (const [name, a] of [['scores', scores], ['token_type', types]] as const) {
    if (a && a.length < tokens.length) throw new Error(`tokenizer.ggml.${name} has ${a.length} entries for ${tokens.length} tokens`);
  }
  const merges = strings(metadata, k('merges'));
  if (model === 'gpt2' && !merges) throw new Error('a gpt2 tokenizer needs tokenizer.ggml.merges');
  return new VocabTokenizer({
    model, pre: str(metadata, k('pre')), tokens, scores, types, merges,
    bos: num(metadata, k('bos_token_id')), eos: num(metadata, k('eos_token_id')),
    unk: num(metadata, k('unknown_token_id')), pad: num(metadata, k('padding_token_id')),
    eot: num(metadata, k('eot_token_id')), eom: num(metadata, k('eom_token_id')),
    addBos: bool(metadata, k('add_bos_token')), addEos: bool(metadata, k('add_eos_token')),
    addSpacePrefix: bool(metadata, k('add_space_prefix')),
    chatTemplate: str(metadata, 'tokenizer.chat_template'),
  });
}
