// The Program: what `schedule` produces and every backend and runtime consumes.
// It is plain JSON data (kernels, buffers, the per-step dispatch list, KV layout),
// so the runtime never re-derives the model, and byte and dispatch counts can be
// computed from it alone (compiler/cost.ts).
import type { KernelSpec } from './kernels.ts';
import type { KvStorage } from './kv.ts';
import type { ModelInfo, ParamInfo } from './model.ts';
import { deviceWords, isCompactType, type CompactType } from './quant.ts';

/** input: tokens, positions and the KV block tables, written by the runtime before each forward. */
export type BufferKind = 'input' | 'param' | 'activation' | 'kv' | 'logits';

/**
 * A buffer's size is linear in three runtime choices: elements + perToken x tokens per
 * forward + perPage x KV pool pages + perSeq x sequences per batch (missing terms are 0).
 */
export interface BufferDecl {
  readonly name: string;
  readonly kind: BufferKind;
  /** u32: packed KV values (f16 pairs, int8 quads, int4 octets); f16 / q8_0 / q4_0 / q4_K / q5_K / q6_K: a param kept compact (quant.ts), `elements` still counts weights. */
  readonly dtype: 'f32' | 'i32' | 'u32' | CompactType;
  readonly perToken: number;
  readonly elements: number;
  readonly perPage?: number;
  readonly perSeq?: number;
  /**
   * Activations only: the arena (Program.arenas) this buffer's values live in. Buffers
   * share an arena only when no step of the forward needs both (compiler/planMemory.ts),
   * so every backend and runtime binds the arena's storage under this buffer's name.
   * Absent: the buffer has storage of its own.
   */
  readonly storage?: string;
  /**
   * Params only: this buffer holds columns [first, first + count) of param `of` (its last
   * axis: rows of the [K, N] storage layout, vocabulary entries of an embedding table), as
   * the [K, count] tensor of its own; `elements` counts the part's weights. A param over the
   * device's buffer limits is split so (compiler/splitParams.ts); absent: the whole param.
   */
  readonly part?: ParamPart;
}

export interface ParamPart { readonly of: string; readonly first: number; readonly count: number }

/**
 * The buffer limits a Program was scheduled for: no buffer of it is larger (params over
 * them are split, see compiler/splitParams.ts). WebGPU's defaults, which every adapter
 * meets, unless the compiler is told otherwise.
 */
export interface BufferLimits {
  /** Largest buffer one binding may see (maxStorageBufferBindingSize). */
  readonly maxBindingBytes: number;
  /** Largest single allocation (maxBufferSize). */
  readonly maxBufferBytes: number;
}

export const WEBGPU_DEFAULT_LIMITS: BufferLimits = { maxBindingBytes: 128 * 1024 * 1024, maxBufferBytes: 256 * 1024 * 1024 };

/** The most bytes one buffer of a Program may have under `l`. */
export const bufferCap = (l: BufferLimits): number => Math.min(l.maxBindingBytes, l.maxBufferBytes);

/** The runtime choices a buffer's size depends on. */
export interface Sizing { readonly maxTokens: number; readonly pages: number; readonly maxSeqs: number }

export function bufferElements(d: BufferDecl, s: Sizing): number {
  return d.elements + d.perToken * s.maxTokens + (d.perPage ?? 0) * s.pages + (d.perSeq ?? 0) * s.maxSeqs;
}

/**
 * The KV cache's storage and the pool's default size. Contiguous layout is the paged
 * machinery with one page of maxContext slots per sequence: the same kernels, and the
 * max-length reservation that paging exists to avoid.
 */
export interface KvPlan extends KvStorage {
  readonly layout: 'contiguous' | 'paged';
  readonly window: number | null;
  /** Pages one sequence of maxContext tokens needs (the block table's row capacity). */
  readonly pagesPerSequence: number;
  /** Default batch capacity and pool size the runtime uses unless told otherwise. */
  readonly maxSequences: number;
  readonly pages: number;
}

/** Device bytes of a buffer: compact params by their packed words, everything else 4 bytes per element. */
export function bufferBytes(d: BufferDecl, s: Sizing): number {
  if (isCompactType(d.dtype)) return 4 * deviceWords(d.dtype, d.elements);
  return bufferElements(d, s) * 4;
}

export interface Step {
  readonly kernel: string;
  /** Binding name -> buffer name. */
  readonly args: Readonly<Record<string, string>>;
  /** Which IR node(s) this dispatch computes, for traces and reports. */
  readonly label: string;
}

/**
 * Buffers for greedy sampling on the device (kernels.ts `argmax`): per sequence, the logits
 * row to reduce (input) and the id chosen (read back instead of the logits).
 */
export const GREEDY_BUFFERS = { rows: 'greedy_rows', ids: 'greedy_ids' } as const;

/** The Program format every backend and runtime checks: /3 added arenas and `storage`, /4 param parts and `limits`. */
export const PROGRAM_FORMAT = 'infer-program/4';

export interface Program {
  readonly format: typeof PROGRAM_FORMAT;
  readonly model: ModelInfo;
  readonly params: readonly ParamInfo[];
  readonly buffers: readonly BufferDecl[];
  /**
   * Shared storage for activations (kind 'activation', per-token f32), each sized for its
   * largest member; a buffer names its arena in `storage`.
   */
  readonly arenas: readonly BufferDecl[];
  readonly kv: KvPlan;
  /** The buffer limits params were split for; a device with smaller limits cannot run this Program. */
  readonly limits: BufferLimits;
  readonly kernels: readonly { readonly key: string; readonly spec: KernelSpec }[];
  /** The dispatches of one forward step over T tokens, in order. */
  readonly steps: readonly Step[];
  readonly logits: string;
  /** Passes that ran, in order (the pipeline's record). */
  readonly passes: readonly string[];
}

