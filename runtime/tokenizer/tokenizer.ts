// The Tokenizer over a Vocab: special-token splitting, then SentencePiece or byte-level
// BPE per raw fragment (llama_vocab::impl::tokenize), and detokenising as llama.cpp's
// token_to_piece + detokenize do, including their leading-space and clean-up rules.
import { bpeEncode } from './bpe.ts';
import { splitSpecial } from './specialSplit.ts';
import { spmEncode } from './spm.ts';
import { Attr, type DecodeOptions, type EncodeOptions, type StreamDecoder, type Tokenizer } from './types.ts';
import { byteLevelDecode, utf8Bytes, wellFormed } from './unicode.ts';
import { Vocab, type VocabData } from './vocab.ts';

const SPECIAL = Attr.control | Attr.unknown;
const EMPTY = new Uint8Array(0);

export class VocabTokenizer implements Tokenizer {
  readonly vocab: Vocab;
  /** Each token's bytes with special tokens rendered (llama.cpp's cache_token_to_piece). */
  private readonly pieces: Uint8Array[];

  constructor(data: VocabData) {
    this.vocab = new Vocab(data);
    this.pieces = this.vocab.texts.map((_, id) => this.piece(id));
  }

  get model() { return this.vocab.model; }
  get pre() { return this.vocab.pre; }
  get vocabSize() { return this.vocab.size; }
  get bos() { return this.vocab.bos; }
  get eos() { return this.vocab.eos; }
  get eot() { return this.vocab.eot; }
  get eom() { return this.vocab.eom; }
  get eog(): ReadonlySet<number> { return this.vocab.eog; }
  get addBos() { return this.vocab.addBos; }
  get addEos() { return this.vocab.addEos; }
  get chatTemplate() { return this.vocab.chatTemplate; }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const v = this.vocab, out: number[] = [];
    const addSpecial = options.addSpecial ?? false;
    if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
    if (text !== '') {
      // SentencePiece adds the space prefix at the start and after every special token.
      let afterSpecial = true;
      for (const f of splitSpecial(v, wellFormed(text), options.parseSpecial ?? false)) {
        if (typeof f === 'number') { out.push(f); afterSpecial = true; continue; }
        if (v.model === 'llama') {
          const prefixed = v.addSpacePrefix && afterSpecial ? ' ' + f : f;
          spmEncode(v, prefixed.replaceAll(' ', '\u2581'), out);
        } else {
          bpeEncode(v, f, out);
        }
        afterSpecial = false;
      }
    }
    if (addSpecial && v.addEos && v.eos !== undefined) out.push(v.eos);
    return out;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const bytes: number[] = [];
    let strip = (options.stripPrefixSpace ?? true) && this.vocab.addSpacePrefix;
    for (const id of ids) {
      this.append(id, options.special ?? false, strip, bytes);
      strip = false;
    }
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
    return options.cleanSpaces ?? this.vocab.cleanSpaces ? cleanSpaces(text) : text;
  }

  createStreamDecoder(options: Omit<DecodeOptions, 'cleanSpaces'> = {}): StreamDecoder {
    // TextDecoder's stream mode holds back an unfinished UTF-8 sequence and turns an
    // invalid one into U+FFFD exactly as a one-shot decode would.
    const td = new TextDecoder('utf-8', { ignoreBOM: true });
    let strip = (options.stripPrefixSpace ?? true) && this.vocab.addSpacePrefix;
    return {
      push: (id: number) => {
        const bytes: number[] = [];
        this.append(id, options.special ?? false, strip, bytes);
        strip = false;
        return td.decode(Uint8Array.from(bytes), { stream: true });
      },
      flush: () => td.decode(),
    };
  }

  tokenText(id: number): string { this.check(id); return this.vocab.texts[id]; }
  tokenBytes(id: number, special = true): Uint8Array {
    this.check(id);
    return !special && this.vocab.attrs[id] & SPECIAL ? EMPTY : this.pieces[id];
  }
  isSpecial(id: number): boolean { this.check(id); return (this.vocab.attrs[id] & SPECIAL) !== 0; }
  attr(id: number): number { this.check(id); return this.vocab.attrs[id]; }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.size) throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocab.size - 1})`);
  }

  private append(id: number, special: boolean, stripSpace: boolean, out: number[]): void {
    const p = this.tokenBytes(id, special);
    // llama.cpp drops one leading space of the first token's piece when the vocabulary adds a prefix.
    for (let i = stripSpace && p[0] === 0x20 ? 1 : 0; i < p.length; i++) out.push(p[i]);
  }

  /** The bytes of one token, special tokens rendered (token_to_piece with special = true). */
  private piece(id: number): Uint8Array {
    const v = this.vocab, attr = v.attrs[id], text = v.texts[id];
    if (attr & (SPECIAL | Attr.userDefined)) return utf8Bytes(text);
    if (v.model === 'llama') {
      if (attr & Attr.normal) return utf8Bytes(text.replaceAll('\u2581', ' '));
      if (attr & Attr.byte) return Uint8Array.of(parseInt(text.slice(3, 5), 16));
      return EMPTY;
    }
    if (attr & Attr.normal) { const b: number[] = []; byteLevelDecode(text, b); return Uint8Array.from(b); }
    return EMPTY;
  }
}

/** llama.cpp's clean_spaces: " ?", " !", " .", " ," lose the space; " ' " -> "'"; " 's", " 'm",
 *  " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it); three passes, each over the
 *  previous one's output. */
export function cleanSpaces(s: string): string {
  let t = s.replace(/ ([?!.,])/g, '$1');
  t = t.replace(/ ' /g, "'");
  return t.replace(/ '(s|m|re|ve)/g, "'$1");
}
