// `infer import`: a GGUF file's header -> a .infer spec that reproduces its
// architecture and binds its weights (`weights gguf`), so `infer run SPEC
// --weights FILE` needs no hand editing. Only the header is read.
//
// Supported: `llama` dense (MHA, GQA, MQA) and Mixtral-style MoE (merged expert
// tensors, softmax -> top-k -> renormalise gating, as llama.cpp runs the llama
// architecture), tied or separate output, plain RoPE.
// Anything the spec could not reproduce exactly (per-expert tensors, rope scaling, partial
// rope, biases or other extra tensors) is refused with an ImportError rather
// than imported into a model that computes something else.
//
// Nothing from the file reaches the spec unchecked: numbers are validated and
// printed by us, the model name is reduced to [A-Za-z0-9_], and the file's
// name in the header comment to [A-Za-z0-9._-].
import { basename } from 'node:path';
import { GgufFile } from '../runtime/weights/gguf.ts';

export class ImportError extends Error {}

export const SUPPORTED = "'llama' (dense or Mixtral-style MoE, with MHA/GQA/MQA attention, tied or separate output)";

export interface ImportOptions {
  /** Cap the spec's max_context below the file's context_length (the KV cache is sized by it). */
  readonly maxContext?: number;
  /** Told what the import changed from the file (e.g. a capped context); the spec says it too. */
  readonly onNote?: (note: string) => void;
}

/**
 * max_context when the file's context_length is larger and no maxContext was asked for:
 * Llama 3.1's 128k. The contiguous f32 KV cache a spec gets is sized by it (2^31, which
 * a corrupt file can claim, is past what the kernels' i32 positions address).
 */
export const IMPORT_CONTEXT_CAP = 131072;

const KEYWORDS = new Set(['model', 'config', 'kv_cache', 'weights', 'params', 'layer', 'return']);

/** general.name -> a DSL identifier: [A-Za-z0-9_] only, starting with a letter, not a keyword. */
export function sanitizeName(raw: string | undefined): string {
  let s = (raw ?? '').normalize('NFKD').replace(/[^A-Za-z0-9_]+/g, '_').replace(/_+/g, '_').replace(/^_+|_+$/g, '').slice(0, 64);
  if (!s) s = 'Imported';
  if (!/^[A-Za-z]/.test(s)) s = `M_${s}`;
  return KEYWORDS.has(s) ? `${s}_model` : s;
}

/** The shortest decimal that reads back as the same f32 (the file stores f32; llama.cpp computes with it). */
export function f32Literal(v: number): string {
  const f = Math.fround(v);
  if (Number.isInteger(f) && Math.abs(f) < 1e15) return `${f}.0`;
  for (let p = 1; p <= 17; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return s.replace(/e\+?/, 'e');
  }
  return String(f);
}

export function importGguf(file: string, opts: ImportOptions = {}): string {
  return GgufFile.with(file, (g) => specFromGguf(g, opts));
}

export function specFromGguf(g: GgufFile, opts: ImportOptions = {}): string {
  const fail = (msg: string): never => { throw new ImportError(`${g.path}: ${msg}`); };
  const arch = g.string('general.architecture');
  if (arch === undefined) fail(`no general.architecture in the metadata; infer imports ${SUPPORTED}`);
  const shown = JSON.stringify(arch!.slice(0, 40));
  if (arch !== 'llama') fail(`architecture ${shown} is not supported; infer imports ${SUPPORTED}`);

  const int = (key: string, fallback?: number): number => {
    const v = g.get(key);
    if (v === undefined) {
      if (fallback === undefined) fail(`the llama architecture needs metadata '${key}', which is missing`);
      return fallback!;
    }
    if (v.type === 'array') fail(`'${key}' is an array (per-layer values are not supported); infer imports ${SUPPORTED}`);
    const n = g.number(key)!;
    if (!Number.isInteger(n) || n < 0) fail(`'${key}' must be a non-negative integer, got ${n}`);
    return n;
  };
  const float = (key: string, fallback?: number): number => {
    const v = g.get(key);
    if (v === undefined) {
      if (fallback === undefined) fail(`the llama architecture needs metadata '${key}', which is missing`);
      return fallback!;
    }
    const n = g.number(key)!;
    if (!Number.isFinite(n) || n <= 0) fail(`'${key}' must be a positive number, got ${n}`);
    return n;
  };

  const experts = int('llama.expert_count', 0);
  if (experts === 0 && g.tensor('blk.0.ffn_gate_exps.weight')) fail(`tensor blk.0.ffn_gate_exps.weight holds merged experts, but 'llama.expert_count' is missing or 0`);
  const expertsUsed = experts > 0 ? int('llama.expert_used_count') : 0;
  if (experts > 0) {
    if (expertsUsed < 1 || expertsUsed > experts) fail(`'llama.expert_used_count' must be in 1..${experts} (expert_count), got ${expertsUsed}`);
    if (!g.tensor('blk.0.ffn_gate_exps.weight')) fail(`this mixture of experts (${experts} experts) has no merged expert tensor blk.0.ffn_gate_exps.weight (files with one tensor per expert are not supported); infer imports ${SUPPORTED}`);
  }
  const scaling = g.string('llama.rope.scaling.type');
  if (scaling !== undefined && scaling !== 'none') fail(`rope scaling ${JSON.stringify(scaling.slice(0, 20))} is not supported; infer imports plain RoPE`);
  for (const key of ['llama.rope.scale_linear', 'llama.rope.scaling.factor']) {
    const s = g.get(key) ? g.number(key) : undefined;
    if (s !== undefined && s !== 1 && s !== 0) fail(`'${key}' = ${s}: rope scaling is not supported; infer imports plain RoPE`);
  }

  const layers = int('llama.block_count'), dim = int('llama.embedding_length'), ffn = int('llama.feed_forward_length');
  const heads = int('llama.attention.head_count'), kvHeads = int('llama.attention.head_count_kv', heads);
  for (const [k, v] of [['block_count', layers], ['embedding_length', dim], ['feed_forward_length', ffn], ['attention.head_count', heads], ['attention.head_count_kv', kvHeads]] as const) {
    if (v < 1) fail(`'llama.${k}' must be at least 1, got ${v}`);
  }
  const embd = g.tensor('token_embd.weight');
  if (embd && (embd.dims.length !== 2 || embd.dims[0] !== dim)) fail(`'llama.embedding_length' is ${dim}, but token_embd.weight has dims [${embd!.dims.join(', ')}] (expected [${dim}, vocab])`);
  if (heads % kvHeads !== 0) fail(`'llama.attention.head_count' (${heads}) is not a multiple of 'llama.attention.head_count_kv' (${kvHeads})`);
  const headDim = int('llama.attention.key_length', dim % heads === 0 ? dim / heads : 0);
  if (headDim < 1) fail(`'llama.embedding_length' (${dim}) is not a multiple of 'llama.attention.head_count' (${heads}), and there is no 'llama.attention.key_length'`);
  if (int('llama.attention.value_length', headDim) !== headDim) fail(`'llama.attention.value_length' differs from the key length ${headDim}; infer needs them equal`);
  if (headDim % 2 !== 0) fail(`the head size ${headDim} ('llama.attention.key_length', or embedding_length / head_count) is odd; RoPE needs it even`);
  const ropeDims = int('llama.rope.dimension_count', headDim);
  if (ropeDims !== headDim) fail(`'llama.rope.dimension_count' (${ropeDims}) differs from the head size ${headDim} (partial RoPE is not supported)`);
  const theta = float('llama.rope.freq_base', 10000);
  const eps = float('llama.attention.layer_norm_rms_epsilon');
  let maxContext = int('llama.context_length', 2048);
  if (maxContext < 1) fail(`'llama.context_length' must be at least 1, got ${maxContext}`);
  const notes: string[] = [];
  if (opts.maxContext !== undefined) maxContext = Math.min(maxContext, opts.maxContext);
  else if (maxContext > IMPORT_CONTEXT_CAP) {
    notes.push(`'llama.context_length' is ${maxContext}: max_context capped at ${IMPORT_CONTEXT_CAP} (infer import --max-context N for another)`);
    maxContext = IMPORT_CONTEXT_CAP;
  }

  if (!embd) fail(`no tensor token_embd.weight: a llama file needs its token embeddings`);
  const vocab = embd!.dims[1];
  const tied = !g.tensor('output.weight');
  const perLayer = experts > 0 ? MOE_LAYER_TENSORS : LAYER_TENSORS;
  // Bound names by pattern, not by listing block_count layers (the file may claim 1e9).
  const layerName = new RegExp(`^blk\\.(0|[1-9][0-9]{0,8})\\.(${perLayer.join('|')})\\.weight$`);
  const isBound = (n: string) => (n === 'token_embd.weight' || n === 'output_norm.weight' || (!tied && n === 'output.weight')
    || Number(layerName.exec(n)?.[1] ?? Infinity) < layers);
  const extra = g.tensors.map((t) => t.name).filter((n) => !isBound(n));
  if (extra.length) {
    const list = extra.slice(0, 4).map((n) => JSON.stringify(n.slice(0, 60))).join(', ') + (extra.length > 4 ? ` and ${extra.length - 4} more` : '');
    fail(`tensor${extra.length > 1 ? 's' : ''} ${list} ${extra.length > 1 ? 'are' : 'is'} not part of the dense llama that infer imports (biases, rope factors and other extras are not supported)`);
  }
  // Every config number must agree with the tensors (which lie inside the file), so an absurd
  // count or size is refused here, naming its key, rather than written into the spec.
  if (layers * perLayer.length > g.tensors.length) {
    fail(`'llama.block_count' is ${layers}, but the file has ${g.tensors.length} tensors and a layer needs ${perLayer.length} (${perLayer.join(', ')})`);
  }
  const missing = llamaTensorNames(layers, tied, experts > 0).filter((n) => !g.tensor(n));
  if (missing.length) fail(`'llama.block_count' is ${layers}, but tensor ${missing[0]} is missing${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`);
  const dimsOf = (name: string, want: number[], keys: string) => {
    const t = g.tensor(name)!;
    if (t.dims.join() !== want.join()) fail(`with ${keys}, ${name} would be [${want.join(', ')}], but the file's has dims [${t.dims.join(', ')}]`);
  };
  dimsOf('output_norm.weight', [dim], `'llama.embedding_length' (${dim})`);
  dimsOf('blk.0.attn_q.weight', [dim, heads * headDim], `'llama.attention.head_count' (${heads}) and the head size ${headDim}`);
  dimsOf('blk.0.attn_k.weight', [dim, kvHeads * headDim], `'llama.attention.head_count_kv' (${kvHeads}) and the head size ${headDim}`);
  if (experts > 0) {
    dimsOf('blk.0.ffn_gate_inp.weight', [dim, experts], `'llama.expert_count' (${experts})`);
    dimsOf('blk.0.ffn_gate_exps.weight', [dim, ffn, experts], `'llama.feed_forward_length' (${ffn}) and 'llama.expert_count' (${experts})`);
  } else dimsOf('blk.0.ffn_gate.weight', [dim, ffn], `'llama.feed_forward_length' (${ffn})`);
  const eosId = g.get('tokenizer.ggml.eos_token_id') ? g.number('tokenizer.ggml.eos_token_id') : undefined;
  const eos = eosId !== undefined && Number.isInteger(eosId) && eosId >= 0 && eosId < vocab ? eosId : undefined;

  const spec = renderSpec({
    name: sanitizeName(g.string('general.name') ?? basename(g.path).replace(/\.gguf$/i, '')),
    source: basename(g.path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120),
    vocab, dim, layers, heads, kvHeads, headDim, ffn, theta, eps, maxContext, eos, tied, experts, expertsUsed, notes,
  });
  for (const note of notes) opts.onNote?.(`${g.path}: ${note}`);
  return spec;
}

const LAYER_TENSORS = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
const MOE_LAYER_TENSORS = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate_inp', 'ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps'];

/** The GGUF tensor names the generated spec binds. */
export function llamaTensorNames(layers: number, tied: boolean, moe = false): string[] {
  const names = ['token_embd.weight', 'output_norm.weight', ...(tied ? [] : ['output.weight'])];
  for (let l = 0; l < layers; l++) for (const t of moe ? MOE_LAYER_TENSORS : LAYER_TENSORS) names.push(`blk.${l}.${t}.weight`);
  return names;
}

interface SpecFacts {
  name: string; source: string; vocab: number; dim: number; layers: number; heads: number; kvHeads: number;
  headDim: number; ffn: number; theta: number; eps: number; maxContext: number; eos: number | undefined; tied: boolean;
  experts: number; expertsUsed: number; notes: readonly string[];
}

function renderSpec(s: SpecFacts): string {
  const attn = s.kvHeads === s.heads ? 'multi-head' : s.kvHeads === 1 ? 'multi-query' : `grouped-query (${s.heads / s.kvHeads} query heads per KV head)`;
  const moe = s.experts > 0;
  const ffnParams = moe
    ? `      ffn_gate_inp: [dim, experts]
      ffn_gate_exps: [dim, ffn, experts]
      ffn_up_exps: [dim, ffn, experts]
      ffn_down_exps: [ffn, dim, experts]`
    : `      ffn_gate: [dim, ffn]
      ffn_up: [dim, ffn]
      ffn_down: [ffn, dim]`;
  const ffnBody = moe
    ? `    # Mixture of experts as llama.cpp runs it: softmax over all router logits, top-k, renormalised.
    r = topk(softmax(h @ ffn_gate_inp), k = top_k)
    return x + moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }`
    : '    return x + (silu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down';
  return `# Imported from ${s.source} by \`infer import\`: llama architecture, ${attn} attention,${moe ? ` ${s.experts} experts (top-${s.expertsUsed}),` : ''}
# ${s.tied ? 'output tied to the token embeddings' : 'separate output matrix'}. Run it with: infer run SPEC --weights ${s.source}
# Parameter shapes are in ggml order [in, out]; tensors bind by GGUF name (blk.N.attn_q -> blk.N.attn_q.weight).
${s.notes.map((n) => `# Note: ${n}.\n`).join('')}
model ${s.name} {
  config {
    vocab = ${s.vocab}; dim = ${s.dim}; layers = ${s.layers}; heads = ${s.heads}; kv_heads = ${s.kvHeads}
    head_dim = ${s.headDim}; ffn = ${s.ffn}; rope_theta = ${f32Literal(s.theta)}; norm_eps = ${f32Literal(s.eps)}
    max_context = ${s.maxContext}${s.eos !== undefined ? `; eos = ${s.eos}` : ''}${moe ? `\n    experts = ${s.experts}; top_k = ${s.expertsUsed}` : ''}
  }

  kv_cache { layout = contiguous; dtype = f32 }

  weights gguf

  params {
    token_embd: [dim, vocab]
    output_norm: [dim]${s.tied ? '' : '\n    output: [dim, vocab]'}
  }

  x = embed(tokens, token_embd)

  layer block (x: [T, dim]) -> [T, dim] {
    params {
      attn_norm: [dim]
      attn_q: [dim, heads * head_dim]
      attn_k: [dim, kv_heads * head_dim]
      attn_v: [dim, kv_heads * head_dim]
      attn_output: [heads * head_dim, dim]
      ffn_norm: [dim]
${ffnParams}
    }
    h = rmsnorm(x, attn_norm, eps = norm_eps)
    q = rope(reshape(h @ attn_q, [T, heads, head_dim]), theta = rope_theta)
    k = rope(reshape(h @ attn_k, [T, kv_heads, head_dim]), theta = rope_theta)
    v = reshape(h @ attn_v, [T, kv_heads, head_dim])
    x = x + reshape(attention(q, cache(k, v), causal), [T, heads * head_dim]) @ attn_output
    h = rmsnorm(x, ffn_norm, eps = norm_eps)
${ffnBody}
  }

  logits = rmsnorm(x, output_norm, eps = norm_eps) @ ${s.tied ? 'token_embd' : 'output'}
}
`;
}
