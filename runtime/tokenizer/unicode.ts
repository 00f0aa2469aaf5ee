// Unicode helpers the tokenizers share: the GPT-2 byte <-> character table of
// byte-level BPE, UTF-8 encoding, and the character classes the pre-tokenizers
// test. The classes follow llama.cpp's own tables: White_Space (which has U+0085
// and not U+FEFF, unlike JavaScript's \s), \p{L}, \p{N}, and "assigned" (llama.cpp
// gives unassigned code points no flags at all, and its hand-written splitters
// treat such a character as matching nothing).

const utf8 = new TextEncoder();

export function utf8Bytes(s: string): Uint8Array {
  return utf8.encode(s);
}

/** Lone surrogates become U+FFFD, as they do on the way into llama.cpp. */
export function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/**
 * GPT-2's byte -> character table: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100 onwards in byte order, so every byte is one visible character.
 */
function buildByteTable(): { toChar: string[]; toByte: Map<string, number> } {
  const toChar = new Array<string>(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  for (let b = 0; b < 256; b++) toChar[b] = String.fromCharCode(printable(b) ? b : 256 + next++);
  const toByte = new Map<string, number>();
  toChar.forEach((c, b) => toByte.set(c, b));
  return { toChar, toByte };
}

const BYTES = buildByteTable();

/** A string's UTF-8 bytes written as byte-level BPE characters. */
export function byteLevelEncode(s: string): string {
  let out = '';
  for (const b of utf8Bytes(s)) out += BYTES.toChar[b];
  return out;
}

/** Byte-level characters back to bytes; a character outside the table is kept as its own UTF-8
 *  (llama.cpp writes a marker there; such tokens do not occur in real vocabularies). */
export function byteLevelDecode(text: string, out: number[]): void {
  for (const c of text) {
    const b = BYTES.toByte.get(c);
    if (b !== undefined) out.push(b);
    else for (const x of utf8Bytes(c)) out.push(x);
  }
}

// Character classes over one code point. The regexes are compiled once; each test
// runs on a one-character string.
const LETTER = /^\p{L}$/u;
const NUMBER = /^\p{N}$/u;
const SPACE = /^\p{White_Space}$/u;
const UNASSIGNED = /^\p{Cn}$/u;

export interface CharClass { letter: boolean; number: boolean; space: boolean; assigned: boolean }

const cache = new Map<number, CharClass>();

export function charClass(cp: number): CharClass {
  let c = cache.get(cp);
  if (!c) {
    const s = String.fromCodePoint(cp);
    c = { letter: LETTER.test(s), number: NUMBER.test(s), space: SPACE.test(s), assigned: !UNASSIGNED.test(s) };
    if (cache.size < 1 << 16) cache.set(cp, c);
  }
  return c;
}

/** The code points of a string (well-formed input assumed). */
export function codePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!;
    out.push(c);
    if (c > 0xffff) i++;
  }
  return out;
}

/** Whitespace for the regex pre-tokenizers: llama.cpp's set, not JavaScript's \s. */
export const WS = '\\p{White_Space}';
