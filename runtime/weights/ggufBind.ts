// Binding a spec's params to a GGUF file's tensors by GGUF's names, checked for shape and
// loadable type. Browser-safe (no file access): the node reader (gguf.ts) and the in-memory
// one (runtime/embed/ggufBytes.ts) both bind through it.
import type { ParamInfo } from '../../program/model.ts';
import { DEQUANT_TYPES, GgufError, type GgufTensorInfo } from './ggufTypes.ts';

/** What binding needs of a parsed file. */
export interface GgufTensorIndex {
  readonly path: string;
  readonly tensors: readonly GgufTensorInfo[];
  readonly dataOffset: number;
  tensor(name: string): GgufTensorInfo | undefined;
}

/** GGUF's tensor name for a spec param: `token_embd` -> `token_embd.weight`, `blk.0.attn_q` -> `blk.0.attn_q.weight`. */
/**
 * GGUF's tensor name for a spec param: `token_embd` -> `token_embd.weight`, `blk.0.attn_q` ->
 * `blk.0.attn_q.weight`; a name ending in `_bias` names a bias: `blk.0.attn_q_bias` -> `blk.0.attn_q.bias`.
 */
export const ggufTensorName = (param: string): string => (param.endsWith('_bias') && param.length > 5 ? `${param.slice(0, -5)}.bias` : `${param}.weight`);

const trimOnes = (d: readonly number[]): number[] => {
  const out = [...d];
  while (out.length > 1 && out[out.length - 1] === 1) out.pop();
  return out;
};

/** The file's tensor for a spec param, checked for shape and loadable type. */
export function bindTensor(g: GgufTensorIndex, p: ParamInfo): GgufTensorInfo {
  const name = ggufTensorName(p.name);
  const t = g.tensor(name) ?? g.tensor(p.name);
  if (!t) {
    const at = g.tensors[0]?.infoOffset ?? g.dataOffset;
    throw new GgufError(g.path, at, `missing: the spec's parameter ${p.name} [${p.shape.join(', ')}] needs it, and none of the file's ${g.tensors.length} tensors has that name`, name);
  }
  if (trimOnes(t.dims).join() !== trimOnes(p.shape).join()) {
    throw new GgufError(g.path, t.infoOffset, `has dims [${t.dims.join(', ')}], but the spec declares parameter ${p.name} as [${p.shape.join(', ')}] (both in ggml order [in, out])`, t.name);
  }
  if (!(DEQUANT_TYPES as readonly string[]).includes(t.type.name)) {
    throw new GgufError(g.path, t.infoOffset, `type ${t.type.name} cannot be loaded (supported: ${DEQUANT_TYPES.join(', ')})`, t.name);
  }
  return t;
}
