// A vocabulary as llama.cpp loads one (llama_vocab::impl::load): token texts,
// scores and attributes, the special ids with the model's defaults, the flags that
// steer tokenisation, and the fix-ups llama.cpp applies by token text (end-of-turn
// and fill-in-the-middle tokens become control tokens whatever the file says),
// because agreeing with llama.cpp token for token means agreeing with those too.
import { Attr, TokenType } from './types.ts';
import { preTokenizerKind, type PreTokenizerKind } from './preTokenize.ts';
import { utf8Bytes } from './unicode.ts';

/** The plain data a vocabulary is built from (GGUF metadata or a tokenizer.json map onto it). */
export interface VocabData {
  readonly model: 'llama' | 'gpt2';
  readonly pre?: string;
  readonly tokens: readonly string[];
  readonly scores?: ArrayLike<number>;
  /** GGUF token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). */
  readonly types?: ArrayLike<number>;
  /** Byte-level BPE merges, "left right", rank = index. */
  readonly merges?: readonly string[];
  readonly bos?: number; readonly eos?: number; readonly unk?: number; readonly pad?: number;
  readonly eot?: number; readonly eom?: number;
  readonly addBos?: boolean; readonly addEos?: boolean; readonly addSpacePrefix?: boolean;
  readonly chatTemplate?: string;
}

// Texts llama.cpp recognises (and forces to control tokens) when the file names no id.
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>',
  '<EOT>', '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>'];
const EOM_TEXTS = ['<|eom_id|>'];
const FIM_TEXTS = ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>',
  '<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>',
  '<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>',
  '<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>',
  '<|file_sep|>'];
const EOG_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>',
  '<end_of_turn>', '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~['];
// gpt-oss: always rendered, never split as control.
const USER_TEXTS = ['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>'];
const EOG_FIM = ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>', '<|file_sep|>'];

function attrOf(type: number | undefined): number {
  switch (type) {
    case undefined: case TokenType.normal: return Attr.normal;
    case TokenType.unknown: return Attr.unknown;
    case TokenType.control: return Attr.control;
    case TokenType.userDefined: return Attr.userDefined;
    case TokenType.unused: return Attr.unused;
    case TokenType.byte: return Attr.byte;
    default: return Attr.undefined;
  }
}

export class Vocab {
  readonly model: 'llama' | 'gpt2';
  readonly pre: string;
  readonly preKind: PreTokenizerKind;
  readonly texts: string[];
  readonly scores: Float32Array;
  readonly attrs: Uint32Array;
  readonly ids = new Map<string, number>();
  /** Merge rank by "left\u0001right" (the first occurrence wins, as llama.cpp's emplace). */
  readonly ranks = new Map<string, number>();
  readonly bos: number | undefined; readonly eos: number | undefined; readonly unk: number | undefined;
  readonly pad: number | undefined; readonly eot: number | undefined; readonly eom: number | undefined;
  readonly eog = new Set<number>();
  readonly addBos: boolean; readonly addEos: boolean; readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  /** Byte-level BPE: a pre-token that is itself a token skips the merges (llama3). */
  readonly ignoreMerges: boolean;
  /** Control, user-defined and unknown tokens, longest text first: split out of the input first. */
  readonly specials: number[];
  readonly chatTemplate: string | undefined;

  constructor(d: VocabData) {
    const n = d.tokens.length;
    this.model = d.model;
    this.pre = d.pre ?? '';
    this.texts = d.tokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
    this.texts.forEach((t, i) => this.ids.set(t, i));
    this.scores = Float32Array.from({ length: n }, (_, i) => d.scores?.[i] ?? 0);
    this.attrs = Uint32Array.from({ length: n }, (_, i) => attrOf(d.types?.[i]));
    const spm = d.model === 'llama';
    if (!spm) {
      for (let i = 0; i < (d.merges?.length ?? 0); i++) {
        const m = d.merges![i], at = m.indexOf(' ', 1);
        const key = at < 0 ? '\u0001' : `${m.slice(0, at)}\u0001${m.slice(at + 1)}`;
        if (!this.ranks.has(key)) this.ranks.set(key, i);
      }
    }
    this.preKind = spm ? 'none' : preTokenizerKind(this.pre);
    const llama3 = this.preKind === 'llama3';
    // SentencePiece defaults 1/2/0 as llama.cpp. llama.cpp's gpt2 default of 11 for BOS and EOS
    // (GPT-2's ",") is left out: without ids in the file there are none.
    const inRange = (id: number | undefined) => (id !== undefined && id >= 0 && id < n ? id : undefined);
    this.bos = inRange(d.bos ?? (spm ? 1 : undefined));
    this.eos = inRange(d.eos ?? (spm ? 2 : undefined));
    this.unk = inRange(d.unk ?? (spm ? 0 : undefined));
    this.pad = inRange(d.pad);
    this.addBos = d.addBos ?? (spm || llama3);
    this.addEos = d.addEos ?? false;
    this.addSpacePrefix = d.addSpacePrefix ?? spm;
    this.cleanSpaces = !spm && this.preKind !== 'qwen2';
    this.ignoreMerges = llama3;
    this.chatTemplate = d.chatTemplate;

    const byText = (list: readonly string[]) => list.map((t) => this.ids.get(t)).filter((id): id is number => id !== undefined);
    const control = (id: number) => { this.attrs[id] |= Attr.control; };
    this.eot = inRange(d.eot) ?? byText(EOT_TEXTS)[0];
    this.eom = inRange(d.eom) ?? byText(EOM_TEXTS)[0];
    for (const id of [this.eot, this.eom]) if (id !== undefined && d.eot !== id && d.eom !== id) control(id);
    byText(FIM_TEXTS).forEach(control);
    for (const id of [...byText(EOG_TEXTS), ...byText(EOG_FIM)]) { this.eog.add(id); control(id); }
    for (const id of byText(USER_TEXTS)) this.attrs[id] = Attr.userDefined;
    for (const id of [this.eos, this.eot, this.eom]) if (id !== undefined) this.eog.add(id);
    // llama.cpp's exceptions to its own list: with <|return|> and <|call|> (or <|calls|> and
    // <|flush|>), <|end|> is no end; with <|tool_response>, </s> is a plain token.
    const has = (t: string) => { const id = this.ids.get(t); return id !== undefined && this.eog.has(id); };
    const demote = (t: string, attr: number) => { const id = this.ids.get(t)!; this.eog.delete(id); this.attrs[id] = attr; };
    if (has('<|end|>') && ((has('<|return|>') && has('<|call|>')) || (has('<|calls|>') && has('<|flush|>')))) demote('<|end|>', Attr.userDefined);
    if (has('<|tool_response>') && has('</s>')) demote('</s>', Attr.normal);

    const SPLIT = Attr.control | Attr.userDefined | Attr.unknown;
    this.specials = [];
    for (let i = 0; i < n; i++) if (this.attrs[i] & SPLIT) this.specials.push(i);
    // By UTF-8 length as llama.cpp sorts (its sort leaves ties in any order; ours by id).
    const bytes = new Map(this.specials.map((id) => [id, utf8Bytes(this.texts[id]).length]));
    this.specials.sort((a, b) => bytes.get(b)! - bytes.get(a)! || a - b);
  }

  get size(): number { return this.texts.length; }

  /** The byte fallback token of a SentencePiece vocabulary (<0xXX>, else the byte as text). */
  byteToken(b: number): number {
    const id = this.ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? this.ids.get(String.fromCharCode(b));
    if (id === undefined) throw new Error(`the vocabulary has no token for byte 0x${b.toString(16)}`);
    return id;
  }
}
