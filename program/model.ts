// What the runtime knows of a model besides its kernels: sizes, the KV format, how the
// weights bind, and each parameter's name and shape. Produced by lowering, carried in
// the Program, read by every engine and by the generated code.

export type KvLayout = { kind: 'contiguous' } | { kind: 'paged'; pageSize: number };
export type KvDType = 'f32' | 'f16' | 'int8' | 'int4';

/** Model-level facts the runtime needs; everything else is in the nodes. */
export interface ModelInfo {
  readonly name: string;
  readonly vocab: number;
  readonly dim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly maxContext: number;
  readonly eos: number | null;
  readonly kv: { readonly layout: KvLayout; readonly dtype: KvDType; readonly window: number | null };
  readonly weights: { readonly binding: 'random'; readonly seed: number } | { readonly binding: 'gguf' };
  /** Every evaluated config constant, for reports and generated code. */
  readonly constants: Readonly<Record<string, number>>;
}

export interface ParamInfo { readonly name: string; readonly shape: readonly number[] }
