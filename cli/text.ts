// Text in the CLI: the tokenizer a weight file carries (a GGUF's tokenizer.ggml.* metadata,
// or the tokenizer.json beside a safetensors checkpoint), prompts as text (--prompt,
// --prompt-file), and the `infer tokenize` / `infer detokenize` commands.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GgufFile } from '../runtime/weights/gguf.ts';
import { tokenizerFromGguf, tokenizerFromHf, type Tokenizer } from '../runtime/tokenizer/index.ts';
import { weightFormat } from './weights.ts';
import { parseTokenIds } from './args.ts';
import type { Io } from './main.ts';

export class TextError extends Error {}

export interface LoadedTokenizer { readonly tokenizer: Tokenizer; /** Where it came from, in words (errors, the template's name). */ readonly source: string }

/** The tokenizer a weight file carries, or a TextError saying why there is none. */
export function loadTokenizer(weights: string): LoadedTokenizer {
  if (weightFormat(weights) === 'gguf') {
    return GgufFile.with(weights, (g) => {
      if (!g.metadata.has('tokenizer.ggml.model')) throw new TextError(`${weights} carries no tokenizer (no tokenizer.ggml.* metadata): give token ids with --tokens`);
      try { return { tokenizer: tokenizerFromGguf(g.metadata), source: weights }; } catch (e) { throw new TextError(`${weights}: ${(e as Error).message}`); }
    });
  }
  // A checkpoint directory, its index, or one .safetensors file: tokenizer.json sits beside it.
  const dir = statSync(weights, { throwIfNoEntry: false })?.isDirectory() ? weights : dirname(weights);
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new TextError(`no tokenizer.json beside ${weights} (looked for ${file}): give token ids with --tokens`);
  const config = join(dir, 'tokenizer_config.json');
  try {
    const tok = tokenizerFromHf(JSON.parse(readFileSync(file, 'utf8')), existsSync(config) ? JSON.parse(readFileSync(config, 'utf8')) : undefined);
    return { tokenizer: tok, source: file };
  } catch (e) {
    throw new TextError(`${file}: ${(e as Error).message}`);
  }
}

/** The tokenizer for a run that was given text; a clear error when the weights are random. */
export function tokenizerForRun(weights: string | undefined, flag: string, model: string): LoadedTokenizer {
  if (!weights) throw new TextError(`${flag} needs a tokenizer, and ${model} has none: its weights are random(seed) and no --weights file was given (give token ids with --tokens, or --weights FILE.gguf with a 'weights gguf' spec)`);
  return loadTokenizer(weights);
}

/** Reads text inputs: one per non-empty line, or a JSON array of strings for a .json file. */
export function readTextFile(path: string, flag: string, { jsonOnly = false } = {}): string[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new TextError(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`); }
  if (jsonOnly || /\.json$/i.test(path)) {
    let v: unknown;
    try { v = JSON.parse(text); } catch (e) { throw new TextError(`${flag} ${path}: not JSON (${(e as Error).message})`); }
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new TextError(`${flag} ${path}: expected a JSON array of strings`);
    return v as string[];
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new TextError(`${flag} ${path} holds no prompt (one prompt per line, or a .json array of strings)`);
  return lines;
}

/** Text prompts as ids: BOS as the vocabulary says; special-token texts are recognised (a rendered chat template carries them). */
export function encodePrompt(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text, { addSpecial: true, parseSpecial: true });
  if (ids.length === 0) throw new TextError(`the prompt ${JSON.stringify(text)} encodes to no tokens`);
  return ids;
}

/**
 * Writes generated tokens as text as they come, through the streaming decoder (a character
 * split over byte-fallback tokens is held until complete). End-of-generation tokens print nothing.
 */
export function textStreamer(tok: Tokenizer, write: (t: string) => void): { push(id: number): void; end(): void } {
  const d = tok.createStreamDecoder({ stripPrefixSpace: false });
  return { push: (id) => { const t = d.push(id); if (t) write(t); }, end: () => { const t = d.flush(); if (t) write(t); } };
}

/** A sequence's text for --json and batch output (spaces as the stream printed them). */
export const decodeText = (tok: Tokenizer, ids: readonly number[]): string => {
  const d = tok.createStreamDecoder({ stripPrefixSpace: false });
  return ids.map((id) => d.push(id)).join('') + d.flush();
};

export interface TokenizeFlags { weights?: string; text?: string; 'text-file'?: string; special?: boolean; json?: boolean; ids?: string }

const needWeights = (cmd: string, f: TokenizeFlags): string => {
  if (!f.weights) throw new TextError(`${cmd} needs --weights FILE (a .gguf file, or a safetensors checkpoint with tokenizer.json beside it)`);
  return f.weights;
};

/** `infer tokenize --weights F (--text T | --text-file F.json) [--special] [--json]`. */
export function tokenizeCommand(f: TokenizeFlags, io: Io): number {
  const { tokenizer: tok } = loadTokenizer(needWeights('tokenize', f));
  if ((f.text === undefined) === (f['text-file'] === undefined)) throw new TextError('tokenize needs --text TEXT or --text-file FILE.json (one of them)');
  // --special: BOS/EOS as the vocabulary says and special-token texts recognised, as llama-tokenize's defaults.
  const enc = (s: string) => tok.encode(s, { addSpecial: f.special ?? false, parseSpecial: f.special ?? false });
  if (f.text !== undefined) {
    const ids = enc(f.text);
    io.out(f.json ? JSON.stringify({ ids }) + '\n' : ids.join(' ') + '\n');
    return 0;
  }
  const all = readTextFile(f['text-file']!, '--text-file', { jsonOnly: true }).map(enc);
  io.out(f.json ? JSON.stringify({ results: all.map((ids) => ({ ids })) }) + '\n' : all.map((ids) => ids.join(' ') + '\n').join(''));
  return 0;
}

/** `infer detokenize --weights F --ids 1,2,3 [--special] [--json]`. */
export function detokenizeCommand(f: TokenizeFlags, io: Io): number {
  const { tokenizer: tok } = loadTokenizer(needWeights('detokenize', f));
  if (f.ids === undefined) throw new TextError('detokenize needs --ids 1,2,3');
  const ids = parseTokenIds(f.ids, tok.vocabSize, '--ids');
  const text = tok.decode(ids, { special: f.special ?? false });
  io.out(f.json ? JSON.stringify({ text }) + '\n' : text + '\n');
  return 0;
}
