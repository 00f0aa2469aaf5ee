// The CLI's weight files: which reader a file needs (by magic, then extension),
// the tensor types a GGUF header declares (so `infer run` can compile f16 and block
// matrices to stay compact on the device), and loading with a progress bar.
import { closeSync, openSync, readSync } from 'node:fs';
import type { Program } from '../program/program.ts';
import { GgufFile } from '../runtime/weights/gguf.ts';
import { SafetensorsWeights } from '../runtime/weights/hfLlama.ts';
import { isCheckpointSet } from '../runtime/weights/safetensorsShards.ts';
import type { ShapedWeightSource } from '../runtime/weights/random.ts';
import type { Io } from './main.ts';
import { loadGgufWeights, progressBar } from './import.ts';

export class WeightFileError extends Error {}

export type WeightFormat = 'gguf' | 'safetensors';

/**
 * GGUF by its magic; safetensors by extension or by its header shape (u64 length, then '{');
 * a sharded Hugging Face checkpoint by its model.safetensors.index.json or its directory.
 */
export function weightFormat(path: string): WeightFormat {
  if (isCheckpointSet(path)) return 'safetensors';
  const head = new Uint8Array(9);
  let got = 0;
  try {
    const fd = openSync(path, 'r');
    try { got = readSync(fd, head, 0, 9, 0); } finally { closeSync(fd); }
  } catch (e) {
    // By name, so the reader gives its own error (file, byte 0, why).
    if (/\.gguf$/i.test(path)) return 'gguf';
    if (/\.safetensors$/i.test(path)) return 'safetensors';
    const code = (e as NodeJS.ErrnoException).code;
    throw new WeightFileError(`${path}: cannot open: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
  if (got >= 4 && String.fromCharCode(...head.subarray(0, 4)) === 'GGUF') return 'gguf';
  if (/\.safetensors$/i.test(path) || (got === 9 && head[8] === 0x7b)) return 'safetensors';
  if (/\.gguf$/i.test(path)) return 'gguf'; // the GGUF reader explains what is wrong with it
  throw new WeightFileError(`${path}: not a GGUF file (no 'GGUF' magic) and not a safetensors file (name or header); infer reads .gguf and .safetensors weights`);
}

/** Param name -> ggml type name, from a GGUF header (empty for safetensors: F32/F16/BF16 load as f32). */
export function fileWeightTypes(path: string): Map<string, string> {
  if (weightFormat(path) !== 'gguf') return new Map();
  return GgufFile.with(path, (g) => new Map(g.tensors.map((t) => [t.name.replace(/\.weight$/, ''), t.type.name])));
}

/** Loads a program's params from either kind of file; `quiet` (e.g. --json) suppresses progress. */
export function loadWeightFile(path: string, program: Program, io: Io, quiet: boolean): ShapedWeightSource {
  if (weightFormat(path) === 'gguf') return loadGgufWeights(path, program.params, io, quiet);
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY) || process.env.INFER_STDERR_TTY === '1';
  const m = program.model;
  return SafetensorsWeights.load(path, program.params, { heads: m.heads, kvHeads: m.kvHeads }, quiet ? {} : { onProgress: progressBar(path, io, tty) });
}
