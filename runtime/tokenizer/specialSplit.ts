// Splits special-token texts out of the input before the model's own encoding, as
// llama.cpp's tokenizer_st_partition: for each special token, longest text first,
// every raw fragment is cut at each (leftmost, non-overlapping) occurrence. Control
// and unknown tokens take part only with parseSpecial; user-defined tokens always do.
import { Attr } from './types.ts';
import type { Vocab } from './vocab.ts';

export type Fragment = string | number;

export function splitSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  let frags: Fragment[] = [text];
  for (const id of vocab.specials) {
    if (!parseSpecial && vocab.attrs[id] & (Attr.control | Attr.unknown)) continue;
    const t = vocab.texts[id];
    if (!frags.some((f) => typeof f === 'string' && f.includes(t))) continue;
    const next: Fragment[] = [];
    for (const f of frags) {
      if (typeof f !== 'string') { next.push(f); continue; }
      let from = 0;
      for (let at = f.indexOf(t); at >= 0; at = f.indexOf(t, from)) {
        if (at > from) next.push(f.slice(from, at));
        next.push(id);
        from = at + t.length;
      }
      if (from < f.length) next.push(f.slice(from));
    }
    frags = next;
  }
  return frags;
}
