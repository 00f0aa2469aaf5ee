// The vocabulary of the GGUF format: metadata value types, ggml tensor types with
// their block geometry, the typed metadata values the reader returns and the
// writer takes, and GgufError. No I/O here, so the reader, the writer, the
// importer and tests share one definition of what is in a file.

import { BLOCK_LAYOUT } from '../../program/quant.ts';

/** Every failure to read a GGUF file: names the file, the byte offset and, when known, the tensor. */
export class GgufError extends Error {
  constructor(readonly file: string, readonly offset: number, readonly detail: string, readonly tensor?: string) {
    super(`${file}: byte ${offset}: ${tensor !== undefined ? `tensor ${printable(tensor)}: ` : ''}${detail}`);
    this.name = 'GgufError';
  }
}

/**
 * A name read from a file, fit for a one-line message: control characters escaped
 * (a corrupt length can make a name swallow binary data), at most `max` characters.
 */
export function printable(s: string, max = 80): string {
  const esc = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return esc.length > max ? `${esc.slice(0, max)}... (${s.length} characters)` : esc;
}

/** Metadata value types by their on-disk id (gguf_type). */
export const VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
export type GgufValueType = (typeof VALUE_TYPES)[number];
export type NumberType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64';
export type BigType = 'u64' | 'i64';

/** Bytes of one fixed-size scalar; strings and arrays are variable (their minimum is their length prefix). */
export const SCALAR_BYTES: Readonly<Record<GgufValueType, number>> = {
  u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, string: 8, array: 12, u64: 8, i64: 8, f64: 8,
};

export type NumberArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/**
 * One metadata value, tagged with its on-disk type so a file round-trips exactly.
 * Numeric arrays are typed arrays (a 128k-token vocabulary's scores stay compact);
 * 64-bit integers are bigints so no value is rounded.
 */
export type GgufValue =
  | { readonly type: NumberType; readonly value: number }
  | { readonly type: BigType; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | GgufArray;

export type GgufArray =
  | { readonly type: 'array'; readonly itemType: NumberType; readonly value: NumberArray }
  | { readonly type: 'array'; readonly itemType: BigType; readonly value: BigUint64Array | BigInt64Array }
  | { readonly type: 'array'; readonly itemType: 'bool'; readonly value: readonly boolean[] }
  | { readonly type: 'array'; readonly itemType: 'string'; readonly value: readonly string[] }
  | { readonly type: 'array'; readonly itemType: 'array'; readonly value: readonly GgufArray[] };

/** The typed array class that holds an array of each numeric item type. */
export const ARRAY_CTORS = {
  u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array, i32: Int32Array,
  f32: Float32Array, f64: Float64Array, u64: BigUint64Array, i64: BigInt64Array,
} as const;

/** ggml tensor types this reader can size, by on-disk id: block length (elements) and block bytes. */
export interface TensorType { readonly id: number; readonly name: string; readonly blockSize: number; readonly blockBytes: number }

const TYPES: readonly TensorType[] = [
  { id: 0, name: 'f32', blockSize: 1, blockBytes: 4 },
  { id: 1, name: 'f16', blockSize: 1, blockBytes: 2 },
  { id: 2, name: 'q4_0', blockSize: BLOCK_LAYOUT.q4_0.elements, blockBytes: BLOCK_LAYOUT.q4_0.bytes },
  { id: 3, name: 'q4_1', blockSize: 32, blockBytes: 20 },
  { id: 6, name: 'q5_0', blockSize: 32, blockBytes: 22 },
  { id: 7, name: 'q5_1', blockSize: 32, blockBytes: 24 },
  { id: 8, name: 'q8_0', blockSize: BLOCK_LAYOUT.q8_0.elements, blockBytes: BLOCK_LAYOUT.q8_0.bytes },
  { id: 9, name: 'q8_1', blockSize: 32, blockBytes: 36 },
  { id: 10, name: 'q2_K', blockSize: 256, blockBytes: 84 },
  { id: 11, name: 'q3_K', blockSize: 256, blockBytes: 110 },
  { id: 12, name: 'q4_K', blockSize: BLOCK_LAYOUT.q4_K.elements, blockBytes: BLOCK_LAYOUT.q4_K.bytes },
  { id: 13, name: 'q5_K', blockSize: BLOCK_LAYOUT.q5_K.elements, blockBytes: BLOCK_LAYOUT.q5_K.bytes },
  { id: 14, name: 'q6_K', blockSize: BLOCK_LAYOUT.q6_K.elements, blockBytes: BLOCK_LAYOUT.q6_K.bytes },
  { id: 15, name: 'q8_K', blockSize: 256, blockBytes: 292 },
  { id: 24, name: 'i8', blockSize: 1, blockBytes: 1 },
  { id: 25, name: 'i16', blockSize: 1, blockBytes: 2 },
  { id: 26, name: 'i32', blockSize: 1, blockBytes: 4 },
  { id: 27, name: 'i64', blockSize: 1, blockBytes: 8 },
  { id: 28, name: 'f64', blockSize: 1, blockBytes: 8 },
  { id: 30, name: 'bf16', blockSize: 1, blockBytes: 2 },
];

export const TENSOR_TYPES: ReadonlyMap<number, TensorType> = new Map(TYPES.map((t) => [t.id, t]));
export const TENSOR_TYPE_BY_NAME: ReadonlyMap<string, TensorType> = new Map(TYPES.map((t) => [t.name, t]));

/** The tensor types GgufFile.readFloat32 can dequantise. */
export const DEQUANT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_K', 'q5_K', 'q6_K'] as const;
export type DequantType = (typeof DEQUANT_TYPES)[number];
/** The tensor types the writer can encode from Float32Array. */
export const ENCODE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_K', 'q5_K', 'q6_K'] as const;
export type EncodeType = (typeof ENCODE_TYPES)[number];

export function tensorType(name: string): TensorType {
  const t = TENSOR_TYPE_BY_NAME.get(name);
  if (!t) throw new Error(`unknown tensor type ${name}`);
  return t;
}

/** Bytes of a tensor of `elements` values (a multiple of the block size). */
export function tensorBytes(t: TensorType, elements: number): number {
  return (elements / t.blockSize) * t.blockBytes;
}

/** One tensor as the header describes it. `offset` is relative to the data section. */
export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: dims[0] (ne0) varies fastest. */
  readonly dims: readonly number[];
  readonly type: TensorType;
  readonly elements: number;
  readonly bytes: number;
  readonly offset: number;
  /** Absolute byte position of the data in the file. */
  readonly fileOffset: number;
  /** Where this tensor's info record starts in the header (for error messages). */
  readonly infoOffset: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const DEFAULT_ALIGNMENT = 32;

export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
