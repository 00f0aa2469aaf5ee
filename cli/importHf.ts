// `infer import` for a Hugging Face checkpoint: its config.json -> the same spec the GGUF
// file llama.cpp's converter would make of it gives (importRender.ts), with the params'
// GGUF names; the loader (runtime/weights/hfLlama.ts, hfNames.ts) binds them to the
// checkpoint's tensors. Families: config.json `architectures[0]` in hfNames.ts HF_FAMILIES.
//
// Then the spec is compiled and every param checked against the checkpoint's headers
// (name, shape, dtype), and every tensor of the checkpoint must be bound by a param: a
// checkpoint with something the spec leaves out (an attention bias, per-layer extras) is
// refused rather than run as another model. Settings the spec cannot express (rope
// scaling, partial RoPE, Qwen's layer-dependent windows, other activations) are refused.
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { compileSpec } from '../compiler/compile.ts';
import { hfConfigPath, SafetensorsWeights } from '../runtime/weights/hfLlama.ts';
import { HF_ARCHITECTURE_NAMES, HF_FAMILIES } from '../runtime/weights/hfNames.ts';
import { SafetensorsShards } from '../runtime/weights/safetensorsShards.ts';
import { renderSpec } from './importRender.ts';
import { FAMILIES, IMPORT_CONTEXT_CAP, ImportError, sanitizeName, type GemmaFacts, type ImportOptions } from './importSpec.ts';

type Json = Record<string, unknown>;

export function importHf(path: string, opts: ImportOptions = {}): string {
  const configFile = hfConfigPath(path);
  const fail = (msg: string): never => { throw new ImportError(`${configFile}: ${msg}`); };
  let config: Json = {};
  try {
    const parsed: unknown = JSON.parse(readFileSync(configFile, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('config.json is not a JSON object');
    config = parsed as Json;
  } catch (e) {
    if (e instanceof ImportError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? 'no such file: a Hugging Face checkpoint is imported from the config.json beside its .safetensors files' : `cannot read config.json: ${(e as Error).message}`);
  }
  const archName = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
  if (typeof archName !== 'string' || !Object.hasOwn(HF_FAMILIES, archName)) {
    fail(`architectures[0] is ${JSON.stringify(typeof archName === 'string' ? archName.slice(0, 60) : archName ?? null)}; infer imports ${HF_ARCHITECTURE_NAMES}`);
  }
  const hf = HF_FAMILIES[archName as string], family = FAMILIES[hf.arch];

  const has = (key: string) => config[key] !== undefined && config[key] !== null;
  const num = (key: string, fallback?: number, integer = true): number => {
    if (!has(key)) return fallback ?? fail(`'${key}' is missing (a ${archName} config needs it)`);
    const v = config[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) fail(`'${key}' must be a non-negative ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const positive = (key: string, fallback?: number, integer = true): number => {
    const v = num(key, fallback, integer);
    if (v <= 0) fail(`'${key}' must be positive, got ${v}`);
    return v;
  };
  const refuseUnless = (key: string, ok: (v: unknown) => boolean, why: string) => { if (has(key) && !ok(config[key])) fail(`'${key}' is ${JSON.stringify(config[key]).slice(0, 80)}: ${why}`); };

  const vocab = positive('vocab_size'), dim = positive('hidden_size'), layers = positive('num_hidden_layers');
  const heads = positive('num_attention_heads'), kvHeads = positive('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) fail(`'num_attention_heads' (${heads}) is not a multiple of 'num_key_value_heads' (${kvHeads})`);
  const headDim = positive('head_dim', dim % heads === 0 ? dim / heads : undefined);
  if (headDim % 2 !== 0) fail(`the head size ${headDim} is odd; RoPE needs it even`);
  const theta = positive('rope_theta', 10000, false), eps = positive('rms_norm_eps', undefined, false);

  const ropeType = (v: unknown) => (typeof v === 'object' && v !== null ? (v as { rope_type?: unknown; type?: unknown }).rope_type ?? (v as { type?: unknown }).type ?? 'default' : v);
  refuseUnless('rope_scaling', (v) => ropeType(v) === 'default', 'rope scaling is not supported; infer imports plain RoPE');
  refuseUnless('partial_rotary_factor', (v) => v === 1, 'partial RoPE is not supported');
  refuseUnless('attention_bias', (v) => v === (hf.arch === 'qwen2' || hf.arch === 'qwen2moe'), `the ${archName} spec ${family.qkvBias ? 'has' : 'has no'} q/k/v biases`);
  refuseUnless('mlp_bias', (v) => v === false, 'FFN biases are not supported');
  const act = config[family.gemma ? 'hidden_activation' : 'hidden_act'] ?? config.hidden_act;
  const wantAct = family.gemma ? 'gelu_pytorch_tanh' : 'silu';
  if (act !== undefined && act !== wantAct) fail(`the activation is ${JSON.stringify(act).slice(0, 40)}; the ${archName} spec uses ${wantAct}`);
  if (config.use_sliding_window === true) fail("'use_sliding_window' is true: Qwen's windows on the layers past max_window_layers are not supported");

  // Experts: Mixtral's num_local_experts, Qwen's num_experts (every layer sparse).
  const experts = hf.experts === 'qwen' ? positive('num_experts') : hf.experts === 'mixtral' ? num('num_local_experts', 0) : 0;
  const expertsUsed = experts > 0 ? positive('num_experts_per_tok') : 0;
  if (expertsUsed > experts) fail(`'num_experts_per_tok' (${expertsUsed}) is more than the ${experts} experts`);
  if (hf.experts === 'qwen') {
    refuseUnless('decoder_sparse_step', (v) => v === 1, 'infer imports MoE on every layer (decoder_sparse_step 1)');
    refuseUnless('mlp_only_layers', (v) => Array.isArray(v) && v.length === 0, 'dense layers among the MoE ones are not supported');
  }
  // transformers' Qwen MoE configs default norm_topk_prob to false (Qwen3-MoE checkpoints set it true).
  const norm = config.norm_topk_prob;
  if (hf.arch === 'qwen2moe' && norm === true) fail("'norm_topk_prob' is true: the qwen2moe spec does not renormalise the top-k weights (as llama.cpp runs it)");
  const ffn = hf.experts === 'qwen' ? positive('moe_intermediate_size') : positive('intermediate_size');
  const sharedFfn = family.sharedExpert ? positive('shared_expert_intermediate_size') : 0;

  // Windows: Mistral's on every layer; Gemma 2's on every other layer; Phi-3's as llama.cpp: ignored.
  const notes: string[] = [];
  let window = 0;
  if (hf.arch === 'llama') window = num('sliding_window', 0);
  if (family.fused && num('sliding_window', 0) > 0) notes.push("'sliding_window' is ignored, as llama.cpp ignores it for Phi-3: every layer attends to all positions");
  const gemma = family.gemma ? gemmaSettings() : undefined;
  function gemmaSettings(): GemmaFacts {
    window = positive('sliding_window', 4096);
    const types = config.layer_types;
    let period = 2;
    if (types !== undefined && types !== null) {
      const sliding = Array.isArray(types) ? types.map((t) => t === 'sliding_attention') : [];
      if (!Array.isArray(types) || types.length !== layers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention')) fail(`'layer_types' must list 'sliding_attention' or 'full_attention' for each of the ${layers} layers`);
      if (sliding.every((s) => s)) period = 1;
      else if (!sliding.every((s, l) => s === (l % 2 === 0))) fail("'layer_types' is neither windows on every layer nor on the even layers (what the gemma2 spec expresses)");
    }
    for (const k of ['attn_logit_softcapping', 'final_logit_softcapping']) if (!has(k)) fail(`'${k}' is missing or null: the gemma2 spec soft-caps (llama.cpp's defaults would silently apply)`);
    const scalar = positive('query_pre_attn_scalar', headDim, false);
    return {
      attnSoftcap: positive('attn_logit_softcapping', undefined, false), finalSoftcap: positive('final_logit_softcapping', undefined, false), period,
      scaleByDim: scalar !== headDim && scalar * heads === dim, ...(scalar !== headDim && scalar * heads !== dim ? { queryScalar: scalar } : {}),
    };
  }

  let maxContext = positive('max_position_embeddings', 2048);
  if (opts.maxContext !== undefined) maxContext = Math.min(maxContext, opts.maxContext);
  else if (maxContext > IMPORT_CONTEXT_CAP) {
    notes.push(`'max_position_embeddings' is ${maxContext}: max_context capped at ${IMPORT_CONTEXT_CAP} (infer import --max-context N for another)`);
    maxContext = IMPORT_CONTEXT_CAP;
  }
  const eosRaw = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id;
  const eos = typeof eosRaw === 'number' && Number.isInteger(eosRaw) && eosRaw >= 0 && eosRaw < vocab ? eosRaw : undefined;
  // Tied as config.json says (transformers then ignores an lm_head the checkpoint may carry), or,
  // when it does not say, when there is no lm_head. Gemma 2 always reads the embeddings.
  const hasHead = SafetensorsShards.with(path, (f) => f.tensor('lm_head.weight') !== undefined);
  const tied = family.gemma || config.tie_word_embeddings === true || (config.tie_word_embeddings === undefined && !hasHead);

  const dir = isDirectory(path) ? path : dirname(path);
  const source = basename(path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120) || 'checkpoint';
  const spec = renderSpec({
    name: sanitizeName(basename(dir)), source, vocab, dim, layers, heads, kvHeads, headDim, ffn, theta, eps, maxContext, eos, tied,
    experts, expertsUsed, notes, family, window, gemma, sharedFfn, noRenorm: hf.arch === 'qwen3moe' && norm !== true, hf: true,
  });
  const compiled = compileSpec(spec, 'imported.infer');
  if (!compiled.program) throw new Error(`internal: the spec imported from ${configFile} does not compile: ${compiled.diagnostics.map((d) => d.message).join('; ')}`);
  SafetensorsWeights.check(path, compiled.program.params, hf, tied ? ['lm_head.weight'] : []);
  for (const note of notes) opts.onNote?.(`${configFile}: ${note}`);
  return spec;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
