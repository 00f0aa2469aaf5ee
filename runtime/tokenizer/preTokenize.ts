// Byte-level BPE pre-tokenizers: the text is cut into words before merging, by the
// rules `tokenizer.ggml.pre` names. llama.cpp runs the llama3 and gpt-2 patterns
// through hand-written splitters (unicode.cpp), which differ from the regexes in one
// corner: an unassigned code point matches none of the classes, so " " before one
// stands alone and the character becomes its own word. These splitters follow the
// hand-written rules; qwen2 and the default chain go through real regexes (as
// llama.cpp's std::regex path does) with llama.cpp's whitespace set.
import { charClass, codePoints, WS, type CharClass } from './unicode.ts';

export type PreTokenizerKind = 'none' | 'default' | 'llama3' | 'gpt2' | 'qwen2';

/** tokenizer.ggml.pre -> the splitter, with the names llama.cpp maps to each. */
export function preTokenizerKind(pre: string): PreTokenizerKind {
  if (pre === '' || pre === 'default') return 'default';
  if (['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2', 'dbrx', 'smaug-bpe'].includes(pre)) return 'llama3';
  if (['gpt-2', 'phi-2', 'jina-es', 'jina-de', 'gigachat', 'jina-v2-es', 'jina-v2-de', 'a.x-4.0', 'mellum', 'modern-bert',
    'jina-v1-en', 'jina-v2-code', 'roberta-bpe', 'mpt', 'olmo', 'jais', 'trillion', 'exaone4'].includes(pre)) return 'gpt2';
  if (['qwen2', 'deepseek-r1-qwen', 'stablelm2', 'megrez', 'hunyuan'].includes(pre)) return 'qwen2';
  throw new Error(`unknown pre-tokenizer type: '${pre}' (supported: default, llama3 / llama-bpe, gpt-2, qwen2 and their aliases)`);
}

const NONE: CharClass = { letter: false, number: false, space: false, assigned: false };
const CR = 0x0d, LF = 0x0a, SPACE = 0x20, QUOTE = 0x27;
const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c + 32 : c);
const ch = (s: string) => s.charCodeAt(0);

/** Splits by a hand-written rule over code points; `rule` returns the end of the word at pos. */
function splitBy(text: string, rule: (cps: number[], cls: (i: number) => CharClass, pos: number, emit: (end: number) => void) => number): string[] {
  const cps = codePoints(text);
  const offs: number[] = [0];
  for (const c of cps) offs.push(offs[offs.length - 1] + (c > 0xffff ? 2 : 1));
  const cls = (i: number) => (i >= 0 && i < cps.length ? charClass(cps[i]) : NONE);
  const words: string[] = [];
  let prev = 0;
  const emit = (end: number) => { if (end > prev) words.push(text.slice(offs[prev], offs[end])); prev = end; };
  for (let pos = 0; pos < cps.length;) { pos = rule(cps, cls, pos, emit); emit(pos); }
  return words;
}

/** The 's 't 're 've 'm 'll 'd contractions; returns the end or -1. */
function contraction(cps: number[], pos: number, fold: boolean): number {
  const n = cps.length;
  if (cps[pos] !== QUOTE || pos + 1 >= n) return -1;
  const f = fold ? lower : (c: number) => c;
  const a = f(cps[pos + 1]);
  if (a === ch('s') || a === ch('t') || a === ch('m') || a === ch('d')) return pos + 2;
  if (pos + 2 < n) {
    const b = f(cps[pos + 2]);
    if ((a === ch('r') && b === ch('e')) || (a === ch('v') && b === ch('e')) || (a === ch('l') && b === ch('l'))) return pos + 3;
  }
  return -1;
}

/** The end of a whitespace run: \s+(?!\S) leaves the last space to the next word, then \s+. */
function spaces(cps: number[], cls: (i: number) => CharClass, pos: number, newlines: boolean): number {
  let k = 0, lastNl = -1;
  while (cls(pos + k).space) {
    if (cps[pos + k] === CR || cps[pos + k] === LF) lastNl = pos + k + 1;
    k++;
  }
  if (newlines && lastNl >= 0) return lastNl;            // \s*[\r\n]+
  if (k > 1 && pos + k < cps.length) return pos + k - 1; // \s+(?!\S)
  if (k > 0) return pos + k;                             // \s+
  return pos + 1;                                        // nothing matched: one character
}

const other = (c: CharClass) => !(c.space || c.letter || c.number) && c.assigned;

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
function llama3Word(cps: number[], cls: (i: number) => CharClass, pos: number, emit: (end: number) => void): number {
  const c = cps[pos], f = cls(pos);
  const q = contraction(cps, pos, true);
  if (q >= 0) return q;
  if (!(c === CR || c === LF || f.number) && (f.letter || cls(pos + 1).letter)) {
    pos++;
    while (cls(pos).letter) pos++;
    return pos;
  }
  if (f.number) {
    let start = pos;
    while (cls(pos).number) if (++pos - start >= 3) { emit(pos); start = pos; }
    return pos;
  }
  // Note the first test reads the current character's flags, as llama.cpp's does.
  const g = c === SPACE ? cls(pos + 1) : f;
  if (!(g.space || g.letter || g.number) && f.assigned) {
    if (c === SPACE) pos++;
    while (other(cls(pos))) pos++;
    while (cps[pos] === CR || cps[pos] === LF) pos++;
    return pos;
  }
  return spaces(cps, cls, pos, true);
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
function gpt2Word(cps: number[], cls: (i: number) => CharClass, pos: number): number {
  const c = cps[pos];
  const q = contraction(cps, pos, false);
  if (q >= 0) return q;
  const g = c === SPACE ? cls(pos + 1) : cls(pos);
  const start = pos + (c === SPACE ? 1 : 0);
  for (const run of [(x: CharClass) => x.letter, (x: CharClass) => x.number, other]) {
    if (!run(g)) continue;
    pos = start;
    while (run(cls(pos))) pos++;
    return pos;
  }
  return spaces(cps, cls, pos, false);
}

function regexSplit(text: string, re: RegExp): string[] {
  const words: string[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) words.push(text.slice(last, m.index));
    words.push(m[0]);
    last = m.index! + m[0].length;
  }
  if (last < text.length) words.push(text.slice(last));
  return words;
}

const S = WS, NS = `\\P{White_Space}`;
const QWEN2 = new RegExp(`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${S}\\p{L}\\p{N}]+[\\r\\n]*|[${S}]*[\\r\\n]+|[${S}]+(?!${NS})|[${S}]+`, 'gu');
const DEFAULT_PUNCT = /[\p{P}$+<=>^~|]+/gu;
const DIGITS = /\p{N}+/gu;
const THREE_DIGITS = /[0-9][0-9][0-9]/gu;

/** The words of one text fragment (before byte-level encoding). */
export function preTokenize(kind: PreTokenizerKind, text: string): string[] {
  switch (kind) {
    case 'none': return [text];
    case 'llama3': return splitBy(text, llama3Word);
    case 'gpt2': return splitBy(text, gpt2Word);
    case 'qwen2': return regexSplit(text, QWEN2);
    case 'default':
      return regexSplit(text, DEFAULT_PUNCT).flatMap((w) => splitBy(w, gpt2Word))
        .flatMap((w) => regexSplit(w, DIGITS)).flatMap((w) => regexSplit(w, THREE_DIGITS));
  }
}
