// A spec's weights from a Hugging Face safetensors checkpoint (llama, Mistral, Mixtral,
// and the families hfNames.ts maps: Qwen2/3, Qwen2/3-MoE, Gemma 2, Phi-3). Spec params use
// GGUF's names (blk.N.attn_q, ...); each maps to its HF tensor
// (model.layers.N.self_attn.q_proj.weight, ...). Layouts agree without a
// transpose: an HF Linear weight is row-major [out, in], which is exactly ggml's
// [in, out] with element (k, n) at n*K + k; embed_tokens [vocab, dim] likewise.
//
// The one real difference for llama is RoPE. HF's llama rotates the two halves of each head
// (dimension i with i + head_dim/2, "rotate_half"); GGUF files and infer rotate
// adjacent pairs (2i, 2i+1). llama.cpp's converter therefore reorders the output
// rows of q_proj and k_proj within each head so that HF row s*(head_dim/2) + i
// becomes row 2i + s (s = 0, 1); with the same reordering applied to both q and k
// every query-key dot product, and so the model, is unchanged. q uses the query
// head count, k the KV head count. Applying it here means a safetensors file and
// the GGUF file converted from it give the same logits.
//
// Mixtral's expert tensors map too (block_sparse_moe.gate -> ffn_gate_inp, expert
// E's w1/w3/w2 -> ffn_gate.E / ffn_up.E / ffn_down.E, and ffn_{gate,up,down}_exps
// stacks experts 0.. as slices, GGUF's merged layout) for the MoE work to bind.
// The other families' differences (Gemma's 1 + w norms, NEOX RoPE that needs no
// reordering, Qwen's expert names) are in hfNames.ts.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ParamInfo } from '../../program/model.ts';
import type { ShapedWeightSource } from './random.ts';
import { LOADABLE_DTYPES, SafetensorsError, type SafetensorsTensor } from './safetensors.ts';
import { SafetensorsShards } from './safetensorsShards.ts';
import { HF_ARCHITECTURE_NAMES, HF_FAMILIES, hfBinding, LLAMA_HF, type HfFamily } from './hfNames.ts';

export interface HeadCounts { readonly heads: number; readonly kvHeads: number }

export { hfBinding, type HfBinding } from './hfNames.ts';

/**
 * HF row order -> GGUF row order for a [rows = heads * headDim, cols] projection: within
 * each head, row s*(headDim/2) + i moves to 2i + s. (llama.cpp's converter writes this as
 * reshape(heads, 2, headDim/2, cols), swap axes 1 and 2, reshape back.)
 */
export function ropePermuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  return moveRows(w, rows, cols, heads, (h, half, s, i) => [h * 2 * half + s * half + i, h * 2 * half + 2 * i + s]);
}

/** The inverse (GGUF row order -> HF), for writing HF files in tests. */
export function ropeUnpermuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  return moveRows(w, rows, cols, heads, (h, half, s, i) => [h * 2 * half + 2 * i + s, h * 2 * half + s * half + i]);
}

function moveRows(w: Float32Array, rows: number, cols: number, heads: number, map: (h: number, half: number, s: number, i: number) => [number, number]): Float32Array {
  if (rows % (2 * heads) !== 0) throw new Error(`${rows} rows do not split into ${heads} heads of an even size`);
  const half = rows / heads / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const [from, to] = map(h, half, s, i);
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

export interface SafetensorsProgress { readonly tensor: string; readonly index: number; readonly count: number; readonly bytes: number; readonly totalBytes: number }
export interface SafetensorsLoadOptions {
  readonly onProgress?: (p: SafetensorsProgress) => void;
  /** The checkpoint's family (default: the one its config.json names, else llama). */
  readonly family?: HfFamily;
}

/** Tensors a checkpoint may hold that no spec binds (RoPE tables transformers rebuilds anyway). */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/** The config.json beside a checkpoint (in its directory, or beside its file or index). */
export function hfConfigPath(path: string): string {
  return isCheckpointDir(path) ? join(path, 'config.json') : join(dirname(path), 'config.json');
}

/**
 * The family of the checkpoint at `path`, by the config.json beside it (`architectures[0]`);
 * llama when there is none (a bare .safetensors file, as the llama-only loader read them).
 */
export function hfFamilyOf(path: string): HfFamily {
  const file = hfConfigPath(path);
  if (!existsSync(file)) return LLAMA_HF;
  let arch: unknown;
  try { arch = (JSON.parse(readFileSync(file, 'utf8')) as { architectures?: unknown[] })?.architectures?.[0]; } catch (e) {
    throw new SafetensorsError(file, 0, `config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof arch !== 'string' || !Object.hasOwn(HF_FAMILIES, arch)) {
    throw new SafetensorsError(file, 0, `config.json's architectures[0] is ${JSON.stringify(typeof arch === 'string' ? arch.slice(0, 60) : arch ?? null)}; infer reads ${HF_ARCHITECTURE_NAMES}`);
  }
  return HF_FAMILIES[arch];
}

const isCheckpointDir = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

const trimOnes = (d: readonly number[]): number[] => {
  const out = [...d];
  while (out.length > 1 && out[out.length - 1] === 1) out.pop();
  return out;
};

/** A spec's weights from an HF llama safetensors file, as f32 (F32, F16 and BF16 tensors). */
export class SafetensorsWeights implements ShapedWeightSource {
  private readonly data = new Map<string, Float32Array>();

  private constructor(readonly params: readonly ParamInfo[], readonly path: string) {}

  /**
   * Checks every param against the checkpoint (name, shape, dtype) before reading any, then
   * loads them. `path`: a .safetensors file, a model.safetensors.index.json over shards, or a
   * directory holding either. The family (which names, which conversions) is the one the
   * config.json beside the checkpoint names; without one the checkpoint is read as llama.
   */
  static load(path: string, params: readonly ParamInfo[], heads: HeadCounts, opts: SafetensorsLoadOptions = {}): SafetensorsWeights {
    const family = opts.family ?? hfFamilyOf(path);
    return SafetensorsShards.with(path, (f) => {
      const bound = params.map((p) => [p, bindHf(f, p, family)] as const);
      const w = new SafetensorsWeights(params, path);
      const totalBytes = bound.reduce((s, [, b]) => s + b.tensors.reduce((a, t) => a + t.bytes, 0), 0);
      let bytes = 0;
      bound.forEach(([p, b], i) => {
        const parts = b.tensors.map((t) => f.readFloat32(t));
        let data = parts.length === 1 ? parts[0] : concat(parts);
        if (b.permute) {
          const rows = b.tensors[0].shape[0], cols = b.tensors[0].shape[1] ?? 1;
          const n = b.permute === 'heads' ? heads.heads : heads.kvHeads;
          if (rows % (2 * n) !== 0) throw new SafetensorsError(f.fileOf(b.tensors[0]), b.tensors[0].fileOffset, `has ${rows} rows, which do not split into ${n} heads of an even size for the RoPE reordering`, b.tensors[0].name);
          data = ropePermuteRows(data, rows, cols, n);
        }
        // Gemma's (1 + w) norms, as llama.cpp's converter stores them (f32 addition, as there).
        if (b.plusOne) data = data.map((v) => v + 1);
        w.data.set(p.name, data);
        bytes += b.tensors.reduce((a, t) => a + t.bytes, 0);
        opts.onProgress?.({ tensor: b.tensors[0].name, index: i + 1, count: bound.length, bytes, totalBytes });
      });
      return w;
    });
  }

  /**
   * The checks load() makes, without reading any tensor data, plus one: every tensor of the
   * checkpoint is bound by some param (a tensor the spec leaves out, e.g. a bias, would make
   * it compute another model), except those in `ignored`. For `infer import`.
   */
  static check(path: string, params: readonly ParamInfo[], family: HfFamily, ignored: readonly string[] = []): void {
    SafetensorsShards.with(path, (f) => {
      const used = new Set(params.flatMap((p) => bindHf(f, p, family).tensors.map((t) => t.name)));
      const unused = f.tensors.filter((t) => !used.has(t.name) && !ignored.includes(t.name) && !IGNORED.test(t.name));
      if (unused.length) {
        const t = unused[0];
        throw new SafetensorsError(f.fileOf(t), t.fileOffset, `the imported spec has no parameter for it${unused.length > 1 ? ` (nor for ${unused.length - 1} more tensors)` : ''}: infer would compute another model than the checkpoint's`, t.name);
      }
    });
  }

  get(name: string): Float32Array {
    const t = this.data.get(name);
    if (!t) throw new SafetensorsError(this.path, 0, `no loaded tensor for parameter ${name} (loaded: ${this.data.size}, or release() was called)`);
    return t;
  }

  release(): void { this.data.clear(); }
}

const concat = (parts: Float32Array[]): Float32Array => {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

/** The file's tensor(s) for a spec param, checked for presence, shape and dtype. */
function bindHf(f: SafetensorsShards, p: ParamInfo, family: HfFamily): { tensors: SafetensorsTensor[]; permute?: 'heads' | 'kvHeads'; plusOne?: true } {
  const b = hfBinding(p.name, family);
  if (!b) throw new SafetensorsError(f.path, 8, `the spec's parameter ${p.name} has no Hugging Face ${family.arch} name (infer maps token_embd, output_norm, output and blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down} and each family's additions)`, p.name);
  const tensors: SafetensorsTensor[] = [];
  if (b.stackExperts) {
    for (let e = 0; ; e++) {
      const t = f.tensor(b.name.replace('{E}', String(e)));
      if (!t) break;
      tensors.push(t);
    }
    if (tensors.length === 0) throw new SafetensorsError(f.path, 8, `missing: the spec's parameter ${p.name} needs expert tensors ${b.name.replace('{E}', '0')}, ..., and the file has none`, b.name.replace('{E}', '0'));
  } else {
    const t = f.tensor(b.name);
    if (!t) throw new SafetensorsError(f.path, 8, `missing: the spec's parameter ${p.name} [${p.shape.join(', ')}] needs it, and none of the file's ${f.tensors.length} tensors has that name`, b.name);
    tensors.push(t);
  }
  for (const t of tensors) {
    // HF shapes are [out, in] (slowest first); the spec's are ggml order [in, out].
    const ggml = [...t.shape].reverse();
    const want = b.stackExperts ? [...trimOnes(p.shape.slice(0, -1)), tensors.length] : trimOnes(p.shape);
    const got = b.stackExperts ? [...trimOnes(ggml), tensors.length] : trimOnes(ggml);
    if (got.join() !== want.join() || (b.stackExperts && p.shape.at(-1) !== tensors.length)) {
      throw new SafetensorsError(f.fileOf(t), t.fileOffset, `has shape [${t.shape.join(', ')}] (HF order, [out, in]), but the spec declares parameter ${p.name} as [${p.shape.join(', ')}] (ggml order, [in, out]${b.stackExperts ? `, with ${tensors.length} experts in the file` : ''})`, t.name);
    }
    if (!(LOADABLE_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new SafetensorsError(f.fileOf(t), t.fileOffset, `dtype ${t.dtype} cannot be loaded (supported: ${LOADABLE_DTYPES.join(', ')})`, t.name);
    }
  }
  return { tensors, permute: b.permute, plusOne: b.plusOne };
}
