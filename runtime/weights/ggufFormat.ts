// Parses a GGUF header (v2 and v3; the layouts are identical, v1 had 32-bit
// counts and is refused):
//
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x  (string key, u32 value_type, value)
//   tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
//   padding to general.alignment (default 32), then the data section
//
// Tensor offsets are relative to the data section and must be aligned. Every
// count and length is checked against the bytes left in the file before it is
// used, and tensors are checked to lie inside the file without overlapping.
import type { FileCursor } from './ggufCursor.ts';
import {
  alignUp, ARRAY_CTORS, DEFAULT_ALIGNMENT, GGUF_MAGIC, printable, SCALAR_BYTES, TENSOR_TYPES, VALUE_TYPES,
  type GgufArray, type GgufTensorInfo, type GgufValue, type GgufValueType,
} from './ggufTypes.ts';

export interface GgufHeader {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute byte offset of the data section. */
  readonly dataOffset: number;
}

/** Nested arrays deeper than this are refused (each level costs only 12 bytes, so depth needs its own limit). */
const MAX_DEPTH = 8;
const MAX_DIMS = 4;

export function parseHeader(c: FileCursor): GgufHeader {
  c.what = 'the header';
  const magic = c.u32('the magic');
  if (magic !== GGUF_MAGIC) {
    const text = [0, 8, 16, 24].map((s) => (magic >>> s) & 0xff).map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    c.fail(`wrong magic '${text}' (0x${magic.toString(16).padStart(8, '0')}): a GGUF file starts with 'GGUF'`, 0);
  }
  const version = c.u32('the version');
  if (version === 0x02000000 || version === 0x03000000) c.fail(`this is a big-endian GGUF file (version bytes ${version.toString(16)}); only little-endian files are supported`, 4);
  if (version !== 2 && version !== 3) c.fail(`unsupported GGUF version ${version} (versions 2 and 3 are supported)`, 4);
  // A tensor info takes at least 8 (name) + 4 + 4 + 8 bytes; a key/value at least 8 + 4 + 1.
  const tensorCount = c.count('the tensor count', 24);
  const kvCount = c.count('the metadata count', 13);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const at = c.pos;
    c.what = `metadata entry ${i}`;
    const key = c.string('its key');
    c.what = `metadata '${printable(key)}'`;
    if (metadata.has(key)) c.fail(`duplicate metadata key '${printable(key)}'`, at);
    metadata.set(key, readValue(c, valueType(c), 0));
  }

  let alignment = DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al) {
    if (al.type !== 'u32' || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      c.fail(`general.alignment must be a power-of-two u32, got ${al.type === 'array' ? 'an array' : `${al.type} ${String(al.value)}`}`, 0);
    }
    alignment = al.value;
  }

  const infos: Omit<GgufTensorInfo, 'fileOffset'>[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const infoOffset = c.pos;
    c.what = `tensor info ${i}`;
    const name = c.string('its name');
    c.what = `tensor info ${i} (${printable(name)})`;
    if (names.has(name)) c.fail(`duplicate tensor name`, infoOffset, name);
    names.add(name);
    const nd = c.u32('n_dims');
    if (nd < 1 || nd > MAX_DIMS) c.fail(`has ${nd} dimensions (1 to ${MAX_DIMS} are allowed)`, c.pos - 4, name);
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nd; d++) {
      const v = c.u64(`dim ${d}`);
      elements *= v;
      // No tensor has more elements than the file has bits; this also keeps dims exact as numbers.
      if (elements > BigInt(c.size) * 8n) c.fail(`dims [${[...dims, v].join(', ')}${d + 1 < nd ? ', ...' : ''}] hold more elements than the file could store`, c.pos - 8, name);
      dims.push(Number(v));
    }
    const typeAt = c.pos;
    const typeId = c.u32('the tensor type');
    const type = TENSOR_TYPES.get(typeId);
    if (!type) c.fail(`unknown tensor type ${typeId}`, typeAt, name);
    if (dims[0] % type.blockSize !== 0) c.fail(`${type.name} packs ${type.blockSize} values per block, but dim 0 is ${dims[0]}`, typeAt, name);
    const offsetAt = c.pos;
    const offset = c.u64('the data offset');
    if (offset > BigInt(c.size)) c.fail(`data offset ${offset} is past the end of the file (size ${c.size})`, offsetAt, name);
    if (offset % BigInt(alignment) !== 0n) c.fail(`data offset ${offset} is not a multiple of the alignment ${alignment}`, offsetAt, name);
    const n = Number(elements);
    infos.push({ name, dims, type, elements: n, bytes: (n / type.blockSize) * type.blockBytes, offset: Number(offset), infoOffset });
  }

  const dataOffset = alignUp(c.pos, alignment);
  if (tensorCount > 0 && dataOffset > c.size) c.fail(`truncated: the data section should start at byte ${dataOffset}, but the file ends at byte ${c.size}`, c.pos);
  const tensors = infos.map((t) => ({ ...t, fileOffset: dataOffset + t.offset }));
  checkLayout(c, tensors);
  return { version, metadata, tensors, alignment, dataOffset };
}

/** Every tensor's bytes lie inside the file, and no two tensors share a byte. */
function checkLayout(c: FileCursor, tensors: readonly GgufTensorInfo[]): void {
  c.what = 'the tensor layout';
  for (const t of tensors) {
    const end = t.fileOffset + t.bytes;
    if (end > c.size) c.fail(`data at bytes ${t.fileOffset}..${end} runs past the end of the file (size ${c.size}): the file is truncated or the offset is wrong`, t.fileOffset, t.name);
  }
  const sorted = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1], b = sorted[i];
    if (a.bytes > 0 && b.bytes > 0 && a.fileOffset + a.bytes > b.fileOffset) {
      c.fail(`data at bytes ${b.fileOffset}..${b.fileOffset + b.bytes} overlaps tensor ${a.name} at bytes ${a.fileOffset}..${a.fileOffset + a.bytes}`, b.fileOffset, b.name);
    }
  }
}

function valueType(c: FileCursor): GgufValueType {
  const at = c.pos;
  const id = c.u32('the value type');
  const t = VALUE_TYPES[id];
  if (t === undefined) c.fail(`${c.what}: unknown metadata value type ${id}`, at);
  return t;
}

function readValue(c: FileCursor, type: GgufValueType, depth: number): GgufValue {
  switch (type) {
    case 'u8': return { type, value: c.u8() };
    case 'i8': return { type, value: c.i8() };
    case 'u16': return { type, value: c.u16() };
    case 'i16': return { type, value: c.i16() };
    case 'u32': return { type, value: c.u32() };
    case 'i32': return { type, value: c.i32() };
    case 'f32': return { type, value: c.f32() };
    case 'f64': return { type, value: c.f64() };
    case 'u64': return { type, value: c.u64() };
    case 'i64': return { type, value: c.i64() };
    case 'bool': {
      const at = c.pos, b = c.u8('a bool');
      if (b > 1) c.fail(`${c.what}: a bool must be 0 or 1, got ${b}`, at);
      return { type, value: b === 1 };
    }
    case 'string': return { type, value: c.string() };
    case 'array': return readArray(c, depth);
  }
}

function readArray(c: FileCursor, depth: number): GgufArray {
  const at = c.pos;
  if (depth >= MAX_DEPTH) c.fail(`${c.what}: arrays nested more than ${MAX_DEPTH} deep`, at);
  const itemType = valueType(c);
  const n = c.count('the array length', SCALAR_BYTES[itemType]);
  switch (itemType) {
    case 'string': return { type: 'array', itemType, value: Array.from({ length: n }, () => c.string()) };
    case 'bool': return { type: 'array', itemType, value: Array.from({ length: n }, () => readValue(c, 'bool', depth).value as boolean) };
    case 'array': return { type: 'array', itemType, value: Array.from({ length: n }, () => readArray(c, depth + 1)) };
    default: {
      // Numeric: one copy of the raw bytes, viewed as the matching typed array (aligned: a fresh buffer).
      const raw = c.bytes(n * SCALAR_BYTES[itemType], `${n} ${itemType} values`);
      const Ctor = ARRAY_CTORS[itemType];
      return { type: 'array', itemType, value: new Ctor(raw.buffer as ArrayBuffer, 0, n) } as GgufArray;
    }
  }
}

