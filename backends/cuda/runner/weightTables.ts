// The weight tables of a generated runner (host/model.h): everything about loading a weight
// file that is known when the Program is compiled, as numbers and checked names, so the C++
// side (weights_*.h) only parses the container, checks each tensor against its row and
// converts it table by table. Per param buffer: the file tensors it binds (GGUF names, the
// Hugging Face names and the RoPE row reordering of q/k), the param's shape, the columns a
// part holds, its device type and bytes; the device block layouts of program/quant.ts; the
// container's type tables (GGUF type ids, safetensors dtypes, as the caller's readers define
// them: runtime/ is above this layer). Names reach C++ only as string literals in which every
// byte outside [A-Za-z0-9_.] is an octal escape, so no file or spec text can end a literal.
import type { Program } from '../../../program/program.ts';
import { BLOCK_LAYOUT, K_SECTIONS, QUANT_TYPES, QUANT_WORDS_PER_BLOCK } from '../../../program/quant.ts';
import { LiteralError } from '../../cstyle/literal.ts';

/** A ggml tensor type of GGUF files: its on-disk id, name and block geometry. */
export interface FileTypeRow { readonly id: number; readonly name: string; readonly blockSize: number; readonly blockBytes: number }
/** A safetensors dtype: its name, bytes per element and the ggml type its bytes are (null: not loadable). */
export interface SafetensorsTypeRow { readonly name: string; readonly bytes: number; readonly as: string | null }

/** Where one param's tensor lives in each container the runner reads. */
export interface ParamBinding {
  /** GGUF tensor names, tried in order. */
  readonly gguf: readonly string[];
  /** Hugging Face tensor names (several: experts stacked along the last axis), or none for a param HF llama has no name for. */
  readonly hf: readonly string[];
  /** Heads of the HF -> GGUF RoPE row reordering (hfLlama.ts ropePermuteRows), 0 for none. */
  readonly permuteHeads: number;
}

export interface WeightFormats {
  readonly ggufTypes: readonly FileTypeRow[];
  readonly safetensorsTypes: readonly SafetensorsTypeRow[];
  readonly bind: (param: string, shape: readonly number[]) => ParamBinding;
}

/** The device types of a param buffer, index = model.h DeviceType index: f32, f16, then the block types. */
export const DEVICE_TYPES = ['f32', 'f16', ...QUANT_TYPES] as const;

/** A C string literal of `s`: bytes outside [A-Za-z0-9_.] as three-digit octal escapes. */
export function cString(s: string): string {
  let out = '"';
  for (const b of new TextEncoder().encode(s)) out += /[A-Za-z0-9_.]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  return out + '"';
}

const u64 = (n: number): string => {
  if (!Number.isSafeInteger(n) || n < 0) throw new LiteralError(`not a u64 literal: ${String(n)}`);
  return `${n}ull`;
};
const u32 = (n: number): string => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new LiteralError(`not a u32 literal: ${String(n)}`);
  return `${n}u`;
};

/** The model.h lines declaring the weight tables (inside namespace model). */
export function weightTableLines(program: Program, formats: WeightFormats | null): string[] {
  const deviceTypes = DEVICE_TYPES.map((t) => {
    if (t === 'f32') return `  {"f32", 1u, 4u, 0u, 0u, 0u, false},`;
    if (t === 'f16') return `  {"f16", 1u, 2u, 0u, 0u, 0u, false},`;
    const l = BLOCK_LAYOUT[t];
    return `  {${cString(t)}, ${u32(l.elements)}, ${u32(l.bytes)}, ${u32(l.halves)}, ${u32(l.halvesAt)}, ${u32(QUANT_WORDS_PER_BLOCK[t])}, true},`;
  });
  const lines = [
    '/** A param buffer\'s device type: block geometry (program/quant.ts BLOCK_LAYOUT); blocks: bodies then f16 halves. */',
    'struct DeviceType { const char* name; unsigned block_elements, block_bytes, halves, halves_at, body_words; bool blocks; };',
    `inline const DeviceType DEVICE_TYPES[] = {\n${deviceTypes.join('\n')}\n};`,
    `constexpr unsigned DEVICE_TYPE_COUNT = ${u32(DEVICE_TYPES.length)};`,
    '/** Byte offsets of the K-quant fields inside a block\'s body (program/quant.ts K_SECTIONS), for dequantising to f32. */',
    `constexpr unsigned K4_SCALES = ${u32(K_SECTIONS.q4_K.scales)}, K4_QS = ${u32(K_SECTIONS.q4_K.qs)}, K5_QH = ${u32(K_SECTIONS.q5_K.qh)}, K5_QS = ${u32(K_SECTIONS.q5_K.qs)};`,
    `constexpr unsigned K6_QL = ${u32(K_SECTIONS.q6_K.ql)}, K6_QH = ${u32(K_SECTIONS.q6_K.qh)}, K6_SCALES = ${u32(K_SECTIONS.q6_K.scales)}, K6_D = ${u32(BLOCK_LAYOUT.q6_K.halvesAt)};`,
    '/** A GGUF tensor type: on-disk id, ggml name, elements and bytes per block. */',
    'struct FileType { unsigned id; const char* name; unsigned block_elements, block_bytes; };',
    '/** A safetensors dtype: name, bytes per element, the FileType its bytes are (nullptr: not loadable). */',
    'struct SafetensorsType { const char* name; unsigned bytes; const char* as; };',
    '/**',
    ' * A param buffer\'s weights: its device type; the whole param\'s shape (ggml order, ndims used);',
    ' * the columns (last axis) this buffer holds; GGUF names to try (gguf_count from gguf_first in NAMES);',
    ' * HF names (hf_count from hf_first: experts stacked along the last axis); heads of the q/k RoPE reordering.',
    ' */',
    'struct ParamWeights { int buffer; unsigned device_type; unsigned ndims; uint64_t shape[4]; uint64_t first_col, cols;',
    '                      unsigned gguf_first, gguf_count, hf_first, hf_count, permute_heads; };',
  ];
  if (!formats) {
    lines.push(
      'inline const FileType FILE_TYPES[] = {{0u, "", 0u, 0u}};',
      'constexpr unsigned FILE_TYPE_COUNT = 0u;',
      'inline const SafetensorsType SAFETENSORS_TYPES[] = {{"", 0u, nullptr}};',
      'constexpr unsigned SAFETENSORS_TYPE_COUNT = 0u;',
      'inline const char* const NAMES[] = {""};',
      'inline const ParamWeights PARAM_WEIGHTS[] = {{-1, 0u, 0u, {0ull, 0ull, 0ull, 0ull}, 0ull, 0ull, 0u, 0u, 0u, 0u, 0u}};',
      'constexpr uint64_t PARAM_WEIGHT_COUNT = 0ull;',
    );
    return lines;
  }
  const names: string[] = [];
  const shapes = new Map(program.params.map((p) => [p.name, p.shape]));
  const rows: string[] = [];
  program.buffers.forEach((b, i) => {
    if (b.kind !== 'param') return;
    const param = b.part?.of ?? b.name.replace(/^param:/, '');
    const shape = shapes.get(param);
    if (!shape) throw new LiteralError(`param buffer ${i} has no declared shape`);
    if (shape.length < 1 || shape.length > 4) throw new LiteralError(`param buffer ${i} has ${shape.length} dimensions (1 to 4 are loadable)`);
    const device = (DEVICE_TYPES as readonly string[]).indexOf(b.dtype);
    if (device < 0) throw new LiteralError(`param buffer ${i} has device type ${b.dtype}, which the runner cannot fill`);
    const N = shape[shape.length - 1];
    const first = b.part?.first ?? 0, cols = b.part?.count ?? N;
    const bind = formats.bind(param, shape);
    const gguf = names.length;
    names.push(...bind.gguf);
    const hf = names.length;
    names.push(...bind.hf);
    const dims = [0, 1, 2, 3].map((d) => u64(shape[d] ?? 0)).join(', ');
    rows.push(`  {${i}, ${u32(device)}, ${u32(shape.length)}, {${dims}}, ${u64(first)}, ${u64(cols)}, ` +
      `${u32(gguf)}, ${u32(bind.gguf.length)}, ${u32(hf)}, ${u32(bind.hf.length)}, ${u32(bind.permuteHeads)}},`);
  });
  lines.push(
    `inline const FileType FILE_TYPES[] = {\n${formats.ggufTypes.map((t) => `  {${u32(t.id)}, ${cString(t.name)}, ${u32(t.blockSize)}, ${u32(t.blockBytes)}},`).join('\n')}\n};`,
    `constexpr unsigned FILE_TYPE_COUNT = ${u32(formats.ggufTypes.length)};`,
    `inline const SafetensorsType SAFETENSORS_TYPES[] = {\n${formats.safetensorsTypes.map((t) => `  {${cString(t.name)}, ${u32(t.bytes)}, ${t.as === null ? 'nullptr' : cString(t.as)}},`).join('\n')}\n};`,
    `constexpr unsigned SAFETENSORS_TYPE_COUNT = ${u32(formats.safetensorsTypes.length)};`,
    `inline const char* const NAMES[] = {\n${[...names.map((n) => `  ${cString(n)},`), '  ""'].join('\n')}\n};`,
    `inline const ParamWeights PARAM_WEIGHTS[] = {\n${rows.join('\n')}\n  {-1, 0u, 0u, {0ull, 0ull, 0ull, 0ull}, 0ull, 0ull, 0u, 0u, 0u, 0u, 0u},\n};`,
    `constexpr uint64_t PARAM_WEIGHT_COUNT = ${u64(rows.length)};`,
  );
  return lines;
}
