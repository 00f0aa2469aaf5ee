// `infer import`: a GGUF file's header -> a .infer spec that reproduces its
// architecture and binds its weights (`weights gguf`), so `infer run SPEC
// --weights FILE` needs no hand editing. Only the header is read.
//
// Supported: `llama` dense (MHA, GQA, MQA; with `llama.attention.sliding_window`, Mistral's
// window) and Mixtral-style MoE (merged expert tensors, softmax -> top-k -> renormalise
// gating, as llama.cpp runs the llama architecture); `qwen2` (q/k/v biases, NEOX RoPE);
// `qwen3` (per-head RMS norms of q and k, NEOX RoPE). Tied or separate output.
// Anything the spec could not reproduce exactly (per-expert tensors, rope scaling, partial
// rope, biases or other extra tensors) is refused with an ImportError rather
// than imported into a model that computes something else.
//
// Nothing from the file reaches the spec unchecked: numbers are validated and
// printed by us, the model name is reduced to [A-Za-z0-9_], and the file's
// name in the header comment to [A-Za-z0-9._-].
import { basename } from 'node:path';
import { GgufFile } from '../runtime/weights/gguf.ts';
import { renderSpec } from './importRender.ts';

export class ImportError extends Error {}

export const SUPPORTED = "'llama' (dense or Mixtral-style MoE, with MHA/GQA/MQA attention, tied or separate output), 'qwen2', 'qwen3', 'gemma2', 'phi3' (fused QKV and gate/up), 'qwen3moe', 'qwen2moe'";

/** What each architecture adds to the llama block (importRender.ts writes it). */
export interface Family {
  readonly arch: string;
  /** RoPE rotates halves (llama.cpp's rope type NEOX) rather than interleaved pairs. */
  readonly neox: boolean;
  /** attn_q/k/v have biases (GGUF `.bias` tensors). */
  readonly qkvBias: boolean;
  /** Per-head RMS norms of q and k before RoPE (attn_q_norm, attn_k_norm, [head_dim]). */
  readonly qkNorm: boolean;
  /** Mixtral-style experts are read from `ARCH.expert_count`. */
  readonly moe: boolean;
  /**
   * Gemma 2's block: embeddings scaled by sqrt(dim), norms after attention and after the FFN
   * too, gated GELU, attention-logit and final-logit soft-capping, a sliding window on
   * alternate layers; the output always reads token_embd.
   */
  readonly gemma: boolean;
  /** Phi-3: one attn_qkv [dim, (heads + 2 kv_heads) head_dim] and one ffn_up [dim, 2 ffn] (gate, then up), split by slicing. */
  readonly fused: boolean;
  /**
   * Qwen2-MoE: unrenormalised top-k experts plus a shared expert (ffn_*_shexp) scaled per token
   * by sigmoid(h @ ffn_gate_inp_shexp).
   */
  readonly sharedExpert?: boolean;
}

export const FAMILIES: Readonly<Record<string, Family>> = {
  llama: { arch: 'llama', neox: false, qkvBias: false, qkNorm: false, moe: true, gemma: false, fused: false },
  qwen2: { arch: 'qwen2', neox: true, qkvBias: true, qkNorm: false, moe: false, gemma: false, fused: false },
  qwen3: { arch: 'qwen3', neox: true, qkvBias: false, qkNorm: true, moe: false, gemma: false, fused: false },
  gemma2: { arch: 'gemma2', neox: true, qkvBias: false, qkNorm: false, moe: false, gemma: true, fused: false },
  phi3: { arch: 'phi3', neox: true, qkvBias: false, qkNorm: false, moe: false, gemma: false, fused: true },
  // Qwen3's block with Mixtral-style experts (softmax, top-k, renormalised: llama.cpp's qwen3moe).
  qwen3moe: { arch: 'qwen3moe', neox: true, qkvBias: false, qkNorm: true, moe: true, gemma: false, fused: false },
  qwen2moe: { arch: 'qwen2moe', neox: true, qkvBias: true, qkNorm: false, moe: true, gemma: false, fused: false, sharedExpert: true },
};

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
  const fam = Object.hasOwn(FAMILIES, arch!) ? FAMILIES[arch!] : undefined;
  if (!fam) fail(`architecture ${shown} is not supported; infer imports ${SUPPORTED}`);
  const family = fam!;
  const A = family.arch;

  const int = (key: string, fallback?: number): number => {
    const v = g.get(key);
    if (v === undefined) {
      if (fallback === undefined) fail(`the ${A} architecture needs metadata '${key}', which is missing`);
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
      if (fallback === undefined) fail(`the ${A} architecture needs metadata '${key}', which is missing`);
      return fallback!;
    }
    const n = g.number(key)!;
    if (!Number.isFinite(n) || n <= 0) fail(`'${key}' must be a positive number, got ${n}`);
    return n;
  };

  const experts = int(`${A}.expert_count`, 0);
  if (experts === 0 && (A === 'qwen3moe' || A === 'qwen2moe')) fail(`'${A}.expert_count' is missing or 0: a ${A} file needs experts`);
  if (experts > 0 && !family.moe) fail(`'${A}.expert_count' is ${experts}: infer imports ${A} dense only (Mixtral-style experts are read for 'llama')`);
  if (experts === 0 && g.tensor('blk.0.ffn_gate_exps.weight')) fail(`tensor blk.0.ffn_gate_exps.weight holds merged experts, but '${A}.expert_count' is missing or 0`);
  const expertsUsed = experts > 0 ? int(`${A}.expert_used_count`) : 0;
  if (experts > 0) {
    if (expertsUsed < 1 || expertsUsed > experts) fail(`'${A}.expert_used_count' must be in 1..${experts} (expert_count), got ${expertsUsed}`);
    if (!g.tensor('blk.0.ffn_gate_exps.weight')) fail(`this mixture of experts (${experts} experts) has no merged expert tensor blk.0.ffn_gate_exps.weight (files with one tensor per expert are not supported); infer imports ${SUPPORTED}`);
  }
  const scaling = g.string(`${A}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== 'none') fail(`rope scaling ${JSON.stringify(scaling.slice(0, 20))} is not supported; infer imports plain RoPE`);
  for (const key of [`${A}.rope.scale_linear`, `${A}.rope.scaling.factor`]) {
    const s = g.get(key) ? g.number(key) : undefined;
    if (s !== undefined && s !== 1 && s !== 0) fail(`'${key}' = ${s}: rope scaling is not supported; infer imports plain RoPE`);
  }

  const layers = int(`${A}.block_count`), dim = int(`${A}.embedding_length`);
  // Qwen3-MoE sizes its experts by expert_feed_forward_length (llama.cpp: else feed_forward_length / expert_used_count).
  const ffn = A === 'qwen3moe' || A === 'qwen2moe' ? int(`${A}.expert_feed_forward_length`, Math.floor(int(`${A}.feed_forward_length`) / Math.max(1, expertsUsed))) : int(`${A}.feed_forward_length`);
  // The shared expert's width (llama.cpp: else feed_forward_length).
  const sharedFfn = family.sharedExpert ? int(`${A}.expert_shared_feed_forward_length`, int(`${A}.feed_forward_length`)) : 0;
  const heads = int(`${A}.attention.head_count`), kvHeads = int(`${A}.attention.head_count_kv`, heads);
  for (const [k, v] of [['block_count', layers], ['embedding_length', dim], ['feed_forward_length', ffn], ['attention.head_count', heads], ['attention.head_count_kv', kvHeads]] as const) {
    if (v < 1) fail(`'${A}.${k}' must be at least 1, got ${v}`);
  }
  const embd = g.tensor('token_embd.weight');
  if (embd && (embd.dims.length !== 2 || embd.dims[0] !== dim)) fail(`'${A}.embedding_length' is ${dim}, but token_embd.weight has dims [${embd!.dims.join(', ')}] (expected [${dim}, vocab])`);
  if (heads % kvHeads !== 0) fail(`'${A}.attention.head_count' (${heads}) is not a multiple of '${A}.attention.head_count_kv' (${kvHeads})`);
  const headDim = int(`${A}.attention.key_length`, dim % heads === 0 ? dim / heads : 0);
  if (headDim < 1) fail(`'${A}.embedding_length' (${dim}) is not a multiple of '${A}.attention.head_count' (${heads}), and there is no '${A}.attention.key_length'`);
  if (int(`${A}.attention.value_length`, headDim) !== headDim) fail(`'${A}.attention.value_length' differs from the key length ${headDim}; infer needs them equal`);
  if (headDim % 2 !== 0) fail(`the head size ${headDim} ('${A}.attention.key_length', or embedding_length / head_count) is odd; RoPE needs it even`);
  const ropeDims = int(`${A}.rope.dimension_count`, headDim);
  if (ropeDims !== headDim) fail(`'${A}.rope.dimension_count' (${ropeDims}) differs from the head size ${headDim} (partial RoPE is not supported)`);
  const theta = float(`${A}.rope.freq_base`, 10000);
  const eps = float(`${A}.attention.layer_norm_rms_epsilon`);
  let maxContext = int(`${A}.context_length`, 2048);
  if (maxContext < 1) fail(`'${A}.context_length' must be at least 1, got ${maxContext}`);
  // Mistral's sliding window (llama.cpp reads the key for other architectures, not for llama:
  // it runs a llama file with full attention, so the two agree only within the window).
  const window = A === 'llama' ? int(`${A}.attention.sliding_window`, 0) : family.gemma ? int(`${A}.attention.sliding_window`, 4096) : 0;
  const gemma = family.gemma ? gemmaFacts(A, int, float, fail, theta, layers, dim, heads) : undefined;
  const notes: string[] = [];
  // llama.cpp turns Phi-3's sliding window off (its converters fill the key inconsistently); so does the import.
  if (family.fused && int(`${A}.attention.sliding_window`, 0) > 0) notes.push(`'${A}.attention.sliding_window' is ignored, as llama.cpp ignores it: every layer attends to all positions`);
  if (opts.maxContext !== undefined) maxContext = Math.min(maxContext, opts.maxContext);
  else if (maxContext > IMPORT_CONTEXT_CAP) {
    notes.push(`'${A}.context_length' is ${maxContext}: max_context capped at ${IMPORT_CONTEXT_CAP} (infer import --max-context N for another)`);
    maxContext = IMPORT_CONTEXT_CAP;
  }

  if (!embd) fail(`no tensor token_embd.weight: a llama file needs its token embeddings`);
  const vocab = embd!.dims[1];
  // Gemma 2 reads its output from token_embd whatever the file holds (an output.weight is refused below).
  const tied = family.gemma || !g.tensor('output.weight');
  const perLayer = layerTensors(family, experts > 0);
  // Bound names by pattern, not by listing block_count layers (the file may claim 1e9).
  const layerName = new RegExp(`^blk\\.(0|[1-9][0-9]{0,8})\\.(${perLayer.map((n) => n.replace('.', '\\.')).join('|')})$`);
  const isBound = (n: string) => (n === 'token_embd.weight' || n === 'output_norm.weight' || (!tied && n === 'output.weight')
    || Number(layerName.exec(n)?.[1] ?? Infinity) < layers);
  const extra = g.tensors.map((t) => t.name).filter((n) => !isBound(n));
  if (extra.length) {
    const list = extra.slice(0, 4).map((n) => JSON.stringify(n.slice(0, 60))).join(', ') + (extra.length > 4 ? ` and ${extra.length - 4} more` : '');
    fail(`tensor${extra.length > 1 ? 's' : ''} ${list} ${extra.length > 1 ? 'are' : 'is'} not part of the ${A} model that infer imports (${family.qkvBias ? '' : 'biases, '}rope factors and other extras are not supported)`);
  }
  // Every config number must agree with the tensors (which lie inside the file), so an absurd
  // count or size is refused here, naming its key, rather than written into the spec.
  if (layers * perLayer.length > g.tensors.length) {
    fail(`'${A}.block_count' is ${layers}, but the file has ${g.tensors.length} tensors and a layer needs ${perLayer.length} (${perLayer.join(', ')})`);
  }
  const missing = llamaTensorNames(layers, tied, experts > 0, family).filter((n) => !g.tensor(n));
  if (missing.length) fail(`'${A}.block_count' is ${layers}, but tensor ${missing[0]} is missing${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`);
  const dimsOf = (name: string, want: number[], keys: string) => {
    const t = g.tensor(name)!;
    if (t.dims.join() !== want.join()) fail(`with ${keys}, ${name} would be [${want.join(', ')}], but the file's has dims [${t.dims.join(', ')}]`);
  };
  dimsOf('output_norm.weight', [dim], `'${A}.embedding_length' (${dim})`);
  if (family.fused) {
    dimsOf('blk.0.attn_qkv.weight', [dim, (heads + 2 * kvHeads) * headDim], `'${A}.attention.head_count' (${heads}), '${A}.attention.head_count_kv' (${kvHeads}) and the head size ${headDim}`);
    dimsOf('blk.0.ffn_up.weight', [dim, 2 * ffn], `'${A}.feed_forward_length' (${ffn}; gate and up fused)`);
  } else {
    dimsOf('blk.0.attn_q.weight', [dim, heads * headDim], `'${A}.attention.head_count' (${heads}) and the head size ${headDim}`);
    dimsOf('blk.0.attn_k.weight', [dim, kvHeads * headDim], `'${A}.attention.head_count_kv' (${kvHeads}) and the head size ${headDim}`);
  }
  if (experts > 0) {
    dimsOf('blk.0.ffn_gate_inp.weight', [dim, experts], `'${A}.expert_count' (${experts})`);
    dimsOf('blk.0.ffn_gate_exps.weight', [dim, ffn, experts], `'${A}.feed_forward_length' (${ffn}) and '${A}.expert_count' (${experts})`);
  } else if (!family.fused) dimsOf('blk.0.ffn_gate.weight', [dim, ffn], `'${A}.feed_forward_length' (${ffn})`);
  const eosId = g.get('tokenizer.ggml.eos_token_id') ? g.number('tokenizer.ggml.eos_token_id') : undefined;
  const eos = eosId !== undefined && Number.isInteger(eosId) && eosId >= 0 && eosId < vocab ? eosId : undefined;

  const spec = renderSpec({
    name: sanitizeName(g.string('general.name') ?? basename(g.path).replace(/\.gguf$/i, '')),
    source: basename(g.path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120),
    vocab, dim, layers, heads, kvHeads, headDim, ffn, theta, eps, maxContext, eos, tied, experts, expertsUsed, notes, family, window, gemma, sharedFfn,
  });
  for (const note of notes) opts.onNote?.(`${g.path}: ${note}`);
  return spec;
}

const LAYER_TENSORS = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
const FUSED_LAYER_TENSORS = ['attn_norm', 'attn_qkv', 'attn_output', 'ffn_norm', 'ffn_up', 'ffn_down'];
const MOE_LAYER_TENSORS = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate_inp', 'ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps'];

/** A layer's GGUF tensors (name after `blk.N.`) for a family. */
export function layerTensors(f: Family, moe: boolean): string[] {
  const names = (f.fused ? FUSED_LAYER_TENSORS : moe ? MOE_LAYER_TENSORS : LAYER_TENSORS).map((n) => `${n}.weight`);
  if (f.qkvBias) names.push('attn_q.bias', 'attn_k.bias', 'attn_v.bias');
  if (f.qkNorm) names.push('attn_q_norm.weight', 'attn_k_norm.weight');
  if (f.gemma) names.push('post_attention_norm.weight', 'post_ffw_norm.weight');
  if (f.sharedExpert) names.push('ffn_gate_inp_shexp.weight', 'ffn_gate_shexp.weight', 'ffn_up_shexp.weight', 'ffn_down_shexp.weight');
  return names;
}

/** The GGUF tensor names the generated spec binds. */
export function llamaTensorNames(layers: number, tied: boolean, moe = false, family: Family = FAMILIES.llama): string[] {
  const names = ['token_embd.weight', 'output_norm.weight', ...(tied ? [] : ['output.weight'])];
  const perLayer = layerTensors(family, moe);
  for (let l = 0; l < layers; l++) for (const t of perLayer) names.push(`blk.${l}.${t}`);
  return names;
}

/** Gemma 2's settings, as llama.cpp reads them (its defaults where a key is missing). */
export interface GemmaFacts {
  readonly attnSoftcap: number; readonly finalSoftcap: number;
  /** Layers with the window: those with layer % period < period - 1 (period 2: the even ones; 0 or 1: all). */
  readonly period: number;
  /** The attention scale when it is not 1/sqrt(head_dim): 1/sqrt(dim/heads) for the 46-layer (27B) model. */
  readonly scaleByDim: boolean;
  /** Else 1/sqrt(queryScalar) when set (a Hugging Face config's query_pre_attn_scalar). */
  readonly queryScalar?: number;
}

function gemmaFacts(A: string, int: (k: string, d?: number) => number, float: (k: string, d?: number) => number, fail: (m: string) => never,
  theta: number, layers: number, dim: number, heads: number): GemmaFacts {
  const period = int(`${A}.attention.sliding_window_pattern`, 2);
  if (period > 2) fail(`'${A}.attention.sliding_window_pattern' is ${period}: infer imports Gemma 2's windows on every other layer (pattern 2), or on all (0, 1)`);
  if (float(`${A}.rope.freq_base_swa`, theta) !== theta) fail(`'${A}.rope.freq_base_swa' differs from '${A}.rope.freq_base': per-layer RoPE bases are not supported`);
  if (dim % heads !== 0 && layers === 46) fail(`'${A}.embedding_length' (${dim}) is not a multiple of the head count (${heads}), which the 46-layer model's attention scale needs`);
  return { attnSoftcap: float(`${A}.attn_logit_softcapping`, 50), finalSoftcap: float(`${A}.final_logit_softcapping`, 30), period, scaleByDim: layers === 46 };
}
