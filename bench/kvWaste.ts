// KV memory waste on a workload of mixed lengths, from the runtime's own page
// accounting (runtime/kv/sequences.ts): every sequence of the workload is live at
// once, holding its prompt and its generated tokens; waste = (reserved - used) / used.
// Contiguous = one max-context page per sequence (the reservation paging avoids).
import { pageBytesPerLayer, tokenBytesPerLayer, type KvStorage } from '../program/kv.ts';
import { KvSequences } from '../runtime/kv/sequences.ts';

export interface WasteRow {
  readonly layout: string;
  readonly page_size: number;
  readonly sequences: number;
  readonly tokens: number;
  readonly bytes_used: number;
  readonly bytes_reserved: number;
  readonly waste: number;
}

/** Sequence lengths: prompts 16..600 and generations 16..400 (seeded), capped at the context. */
export function mixedLengths(count: number, maxContext: number, seed = 1): number[] {
  let s = seed >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  return Array.from({ length: count }, () => Math.min(maxContext, 16 + Math.floor(next() * 585) + 16 + Math.floor(next() * 385)));
}

export function wasteTable(storage: Omit<KvStorage, 'pageSize'>, layers: number, maxContext: number, lengths: readonly number[], pageSizes: readonly number[]): WasteRow[] {
  const rows: WasteRow[] = [];
  for (const P of [maxContext, ...pageSizes]) {
    const kv = new KvSequences(lengths.length * Math.ceil(maxContext / P), P, null, maxContext);
    for (const n of lengths) kv.reserve(kv.join(), new Array<number>(n).fill(0));
    kv.check();
    const u = kv.usage();
    const used = u.slots_used * tokenBytesPerLayer(storage) * layers;
    const reserved = u.pages_used * pageBytesPerLayer({ ...storage, pageSize: P }) * layers;
    rows.push({ layout: P === maxContext ? 'contiguous' : `paged(${P})`, page_size: P, sequences: lengths.length, tokens: u.slots_used, bytes_used: used, bytes_reserved: reserved, waste: (reserved - used) / used });
  }
  return rows;
}
