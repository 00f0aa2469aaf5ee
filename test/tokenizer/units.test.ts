// Tokenizer behaviour that needs no llama.cpp: a small hand-made SentencePiece
// vocabulary (byte fallback, scores), the pre-tokenizers' word splits, the streaming
// decoder across multi-byte characters, and the loaders' refusals.
import { describe, expect, it } from 'vitest';
import { cleanSpaces, tokenizerFromGguf, tokenizerFromHf, VocabTokenizer } from '../../runtime/tokenizer/index.ts';
import { preTokenize } from '../../runtime/tokenizer/preTokenize.ts';
import { gv } from '../../runtime/weights/ggufWriter.ts';
import type { GgufValue } from '../../runtime/weights/ggufTypes.ts';
import { streamDecode } from './agreement.ts';

/** <unk> <s> </s>, 256 byte tokens, then pieces scored so that longer pieces win. */
function tinySpm(extra: string[] = []) {
  const tokens = ['<unk>', '<s>', '</s>'], types = [2, 3, 3], scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(6); scores.push(0); }
  for (const [i, p] of ['▁', 'h', 'e', 'l', 'o', 'he', 'll', 'hell', '▁hello', 'hello', '<|eot_id|>', ...extra].entries()) {
    tokens.push(p); types.push(1); scores.push(p.length * 10 - i);
  }
  return new VocabTokenizer({ model: 'llama', tokens, types, scores });
}

describe('SentencePiece (llama) encoding', () => {
  const tok = tinySpm();
  const id = (t: string) => Array.from({ length: tok.vocabSize }, (_, i) => i).find((i) => tok.tokenText(i) === t)!;

  it('adds the space prefix, merges by score and falls back to bytes', () => {
    expect(tok.encode('hello')).toEqual([id('▁hello')]);
    expect(tok.encode('hello', { addSpecial: true })).toEqual([1, id('▁hello')]);
    // "é" is no piece: its two UTF-8 bytes.
    expect(tok.encode('é')).toEqual([id('▁'), id('<0xC3>'), id('<0xA9>')]);
    expect(tok.decode(tok.encode('é hello'))).toBe('é hello');
  });

  it('splits control tokens only with parseSpecial, and eot comes from the token text', () => {
    expect(tok.eot).toBe(id('<|eot_id|>'));
    expect(tok.isSpecial(tok.eot!)).toBe(true);
    expect(tok.encode('<s>hello', { parseSpecial: true })).toEqual([1, id('▁hello')]);
    expect(tok.encode('<s>hello')).not.toContain(1);
    // As llama.cpp: the first token's space is dropped even when that token renders as nothing.
    expect(tok.decode([1, id('▁hello'), 2])).toBe(' hello');
    expect(tok.decode([id('▁hello'), 2])).toBe('hello');
    expect(tok.decode([1, id('▁hello'), 2], { special: true })).toBe('<s> hello</s>');
  });

  it('streams byte-fallback characters whole', () => {
    const ids = tok.encode('é😀 hello');
    const chunks = streamDecode(tok, ids, false);
    expect(chunks.join('')).toBe('é😀 hello');
    expect(chunks.filter((c) => c !== '')).toEqual(['é', '😀', ' hello']);
    // A character cut off at the end comes out as U+FFFD on flush, as decode() gives it.
    const cut = ids.slice(0, 4);
    expect(streamDecode(tok, cut, false).join('')).toBe(tok.decode(cut));
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.tokenText(tok.vocabSize)).toThrow(/outside the vocabulary/);
  });
});

describe('byte-level pre-tokenizers', () => {
  it('llama3 groups digits by three and keeps the last space for the next word', () => {
    expect(preTokenize('llama3', '1234567 ab  cd\n\n x')).toEqual(['123', '456', '7', ' ab', ' ', ' cd', '\n\n', ' x']);
    expect(preTokenize('llama3', "I'M here")).toEqual(['I', "'M", ' here']);
  });
  it('qwen2 splits every digit; gpt-2 keeps runs and case-sensitive contractions', () => {
    expect(preTokenize('qwen2', 'ab 123')).toEqual(['ab', ' ', '1', '2', '3']);
    expect(preTokenize('gpt2', "ab 123 I'M it's")).toEqual(['ab', ' 123', ' I', "'", 'M', ' it', "'s"]);
  });
  it('an unassigned code point after a space stands alone (llama.cpp\'s hand-written splitter)', () => {
    expect(preTokenize('llama3', 'a \u0378b')).toEqual(['a', ' ', '\u0378b']);
  });
});

describe('loaders and decoding options', () => {
  it('cleans tokenisation spaces as llama.cpp does', () => {
    expect(cleanSpaces("a , b . c ' d it 's I 'm we 're they 've you 'll don 't")).toBe("a, b. c'd it's I'm we're they've you 'll don 't");
  });
  it('refuses unknown models and pre-tokenizers', () => {
    const meta = (model: string, pre?: string) => new Map<string, GgufValue>([
      ['tokenizer.ggml.model', gv.str(model)], ['tokenizer.ggml.tokens', gv.strs(['a', 'b'])],
      ['tokenizer.ggml.merges', gv.strs(['a b'])], ...(pre ? [['tokenizer.ggml.pre', gv.str(pre)] as [string, GgufValue]] : []),
    ]);
    expect(() => tokenizerFromGguf(meta('t5'))).toThrow(/not supported/);
    expect(() => tokenizerFromGguf(meta('gpt2', 'klingon'))).toThrow(/unknown pre-tokenizer type: 'klingon'/);
    // "ab" merges but is no token: llama.cpp then writes each byte's own token.
    expect(tokenizerFromGguf(meta('gpt2', 'gpt-2')).encode('ab')).toEqual([0, 1]);
    expect(() => tokenizerFromHf({ model: { type: 'Unigram' } })).toThrow(/BPE only/);
  });
});
