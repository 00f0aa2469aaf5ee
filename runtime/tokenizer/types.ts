// The tokenizer interface the runtime and a browser page share. Everything in
// runtime/tokenizer/ is plain data and strings: no node: imports, no compiler/ or
// cli/ imports, so the same module runs in a page.

/** Token attributes as llama.cpp keeps them (bit flags, llama_token_attr). */
export const Attr = {
  undefined: 0,
  unknown: 1 << 0,
  unused: 1 << 1,
  normal: 1 << 2,
  control: 1 << 3,
  userDefined: 1 << 4,
  byte: 1 << 5,
} as const;

/** GGUF tokenizer.ggml.token_type values. */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface EncodeOptions {
  /** Add BOS / EOS as the vocabulary says (tokenizer.ggml.add_bos_token / add_eos_token). Default false. */
  readonly addSpecial?: boolean;
  /** Recognise control and unknown token texts (e.g. "<|eot_id|>") in the input. Default false.
   *  User-defined tokens are always recognised, as in llama.cpp and Hugging Face. */
  readonly parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control and unknown tokens as their text; otherwise they render as nothing. Default false. */
  readonly special?: boolean;
  /** Undo tokenisation spaces (" ," -> ","; llama.cpp's clean_spaces). Default: the vocabulary's
   *  setting, which is on for byte-level BPE vocabularies except qwen2 and a few others. */
  readonly cleanSpaces?: boolean;
  /** Drop one leading space from the first token's text when the vocabulary adds a space prefix
   *  (SentencePiece). Default true; pass false when decoding a continuation of earlier tokens. */
  readonly stripPrefixSpace?: boolean;
}

export interface StreamDecoder {
  /** The text that became complete with this token: never a partial UTF-8 character. */
  push(id: number): string;
  /** Whatever is held back (an unfinished character becomes U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  /** 'llama' (SentencePiece, byte fallback) or 'gpt2' (byte-level BPE). */
  readonly model: 'llama' | 'gpt2';
  /** The pre-tokenizer name for gpt2 vocabularies (tokenizer.ggml.pre). */
  readonly pre: string;
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /** End of turn (tokenizer.ggml.eot_token_id, or a token text such as <|eot_id|>, <|im_end|>). */
  readonly eot: number | undefined;
  /** End of message (<|eom_id|>). */
  readonly eom: number | undefined;
  /** Every id that ends generation: eos, eot, eom and the texts llama.cpp treats so. */
  readonly eog: ReadonlySet<number>;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** The Jinja chat template when the file carries one. */
  readonly chatTemplate: string | undefined;

  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** Streaming detokeniser: push ids one at a time. Options as decode's, except that spaces
   *  are never cleaned (that needs the text after). */
  createStreamDecoder(options?: Omit<DecodeOptions, 'cleanSpaces'>): StreamDecoder;
  /** The token's text as stored in the vocabulary (escaped: U+2581 for spaces, byte-level chars). */
  tokenText(id: number): string;
  /** The bytes the token stands for when decoded (special tokens as their text). */
  tokenBytes(id: number, special?: boolean): Uint8Array;
  /** Control or unknown: rendered only with `special`, recognised only with `parseSpecial`. */
  isSpecial(id: number): boolean;
  attr(id: number): number;
}
