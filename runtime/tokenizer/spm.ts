// SentencePiece-style encoding as llama.cpp's llm_tokenizer_spm_session does it:
// split into characters, then repeatedly merge the adjacent pair whose concatenation
// is the vocabulary token with the highest score (ties: the leftmost pair), and
// write each final piece as its token or, when it is none, as <0xXX> byte tokens.
import { Heap } from './heap.ts';
import { utf8Bytes } from './unicode.ts';
import type { Vocab } from './vocab.ts';

interface Bigram { left: number; right: number; score: number; size: number }

const before = (a: Bigram, b: Bigram) => a.score > b.score || (a.score === b.score && a.left < b.left);

/** Encodes text that is already escaped (spaces as U+2581, prefix added) into `out`. */
export function spmEncode(vocab: Vocab, text: string, out: number[]): void {
  // Symbols are characters (code points), linked so merges can remove the right one.
  const sym: string[] = Array.from(text);
  const n = sym.length;
  const len = sym.map((s) => s.length);
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
  const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const queue = new Heap<Bigram>(before);

  const tryAdd = (l: number, r: number) => {
    if (l < 0 || r < 0) return;
    const id = vocab.ids.get(sym[l] + sym[r]);
    if (id === undefined) return;
    queue.push({ left: l, right: r, score: vocab.scores[id], size: len[l] + len[r] });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  for (let b = queue.pop(); b; b = queue.pop()) {
    // A pair is stale once either side changed; sizes only grow, so the sum tells.
    if (len[b.left] === 0 || len[b.right] === 0 || len[b.left] + len[b.right] !== b.size) continue;
    sym[b.left] += sym[b.right];
    len[b.left] += len[b.right];
    len[b.right] = 0;
    next[b.left] = next[b.right];
    if (next[b.right] >= 0) prev[next[b.right]] = b.left;
    tryAdd(prev[b.left], b.left);
    tryAdd(b.left, next[b.left]);
  }

  for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) {
    const id = vocab.ids.get(sym[i]);
    if (id !== undefined) out.push(id);
    else for (const byte of utf8Bytes(sym[i])) out.push(vocab.byteToken(byte));
  }
}
