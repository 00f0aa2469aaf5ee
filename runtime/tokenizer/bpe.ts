// Byte-level BPE as llama.cpp's llm_tokenizer_bpe_session: pre-tokenize, write each
// word's UTF-8 bytes as GPT-2 byte characters, then repeatedly merge the adjacent
// pair with the lowest merge rank (ties: the leftmost pair). With ignore_merges
// (llama3) a word that is already a token is taken whole.
import { Heap } from './heap.ts';
import { preTokenize } from './preTokenize.ts';
import { byteLevelEncode } from './unicode.ts';
import type { Vocab } from './vocab.ts';

interface Bigram { left: number; right: number; rank: number; text: string }

const before = (a: Bigram, b: Bigram) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

function mergeWord(vocab: Vocab, word: string, out: number[]): void {
  if (vocab.ignoreMerges) {
    const whole = vocab.ids.get(word);
    if (whole !== undefined) { out.push(whole); return; }
  }
  // Every byte character is one UTF-16 unit (all lie below U+0180).
  const sym = word.split('');
  const n = sym.length;
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
  const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const queue = new Heap<Bigram>(before);
  const tryAdd = (l: number, r: number) => {
    if (l < 0 || r < 0) return;
    const rank = vocab.ranks.get(`${sym[l]}\u0001${sym[r]}`);
    if (rank !== undefined) queue.push({ left: l, right: r, rank, text: sym[l] + sym[r] });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  for (let b = queue.pop(); b; b = queue.pop()) {
    if (sym[b.left] === '' || sym[b.right] === '' || sym[b.left] + sym[b.right] !== b.text) continue;
    sym[b.left] = b.text;
    sym[b.right] = '';
    next[b.left] = next[b.right];
    if (next[b.right] >= 0) prev[next[b.right]] = b.left;
    tryAdd(prev[b.left], b.left);
    tryAdd(b.left, next[b.left]);
  }

  for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) {
    const id = vocab.ids.get(sym[i]);
    if (id !== undefined) { out.push(id); continue; }
    // No token for the piece (a vocabulary without all 256 byte characters): llama.cpp
    // looks up each raw byte as a one-byte text and skips those it cannot find.
    for (const c of sym[i]) {
      const code = c.charCodeAt(0);
      const single = code < 0x80 ? vocab.ids.get(c) : undefined;
      if (single !== undefined) out.push(single);
    }
  }
}

/** Encodes one raw-text fragment (special tokens already split out) into `out`. */
export function bpeEncode(vocab: Vocab, text: string, out: number[]): void {
  for (const word of preTokenize(vocab.preKind, text)) mergeWord(vocab, byteLevelEncode(word), out);
}
