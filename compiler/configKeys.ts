// The config constants the compiler reads by name, with their defaults: the one table the
// code takes its defaults from and docs/language.md is generated from (scripts/languageDoc.ts).
// Any other config name is a plain constant the spec may use.

export interface ConfigKey {
  readonly name: string;
  /** null: required (no default); undefined in `fallback`: unset means "none". */
  readonly fallback: number | null | 'none';
  readonly meaning: string;
}

export const CONFIG_KEYS = [
  { name: 'vocab', fallback: null, meaning: 'vocabulary size; logits are [T, vocab]' },
  { name: 'dim', fallback: null, meaning: 'model width; the embedding table is [dim, vocab]' },
  { name: 'layers', fallback: null, meaning: 'how many times the layer body is applied' },
  { name: 'heads', fallback: null, meaning: 'query heads (a multiple of kv_heads)' },
  { name: 'kv_heads', fallback: null, meaning: 'key/value heads: the KV cache holds [kv_heads, head_dim] per token and layer' },
  { name: 'head_dim', fallback: null, meaning: 'width of one head (even, for RoPE)' },
  { name: 'max_context', fallback: 2048, meaning: 'longest sequence (prompt + generated); sizes the KV cache and the attention context' },
  { name: 'eos', fallback: 'none', meaning: 'end-of-sequence token id (generation stops there unless --ignore-eos)' },
  { name: 'norm_eps', fallback: 1e-5, meaning: "rmsnorm's eps when the call gives none" },
  { name: 'rope_theta', fallback: 10000, meaning: "rope's theta when the call gives none" },
  { name: 'top_k', fallback: 'none', meaning: "topk's k when the call gives none (topk needs one or the other)" },
] as const satisfies readonly ConfigKey[];

type Defaulted = Extract<(typeof CONFIG_KEYS)[number], { fallback: number }>['name'];

/** The default of a config key that has a numeric one. */
export function configDefault(name: Defaulted): number {
  return (CONFIG_KEYS.find((k) => k.name === name) as { fallback: number }).fallback;
}

/** The required keys, in order. */
export const REQUIRED_CONFIG: readonly string[] = CONFIG_KEYS.filter((k) => k.fallback === null).map((k) => k.name);
