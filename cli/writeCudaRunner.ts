// `infer compile --target cuda` also writes the model's host runner next to its kernels:
// host/ (the generated tables and launchers, the runner's fixed sources), emu/ (the CPU
// emulation headers) and build.sh, so the directory builds on a machine with only g++ or
// nvcc (backends/cuda/runner/generate.ts says what is generated and why it is safe).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cudaRunnerFiles } from '../backends/cuda/runner/generate.ts';
import type { WeightFormats } from '../backends/cuda/runner/weightTables.ts';
import type { Program } from '../program/program.ts';
import { ggufTensorName } from '../runtime/weights/ggufBind.ts';
import { TENSOR_TYPES } from '../runtime/weights/ggufTypes.ts';
import { hfBinding } from '../runtime/weights/hfLlama.ts';
import { randomTensorPlan } from '../runtime/weights/random.ts';
import { DTYPE_BYTES, LOADABLE_DTYPES } from '../runtime/weights/safetensors.ts';
import type { WrittenKernel } from './writeCompiled.ts';

/** Writes the runner for `program` into `out` (whose kernel files `kernels` names); returns the files written. */
export function writeCudaRunner(out: string, program: Program, kernels: readonly WrittenKernel[]): number {
  const w = program.model.weights;
  const random = w.binding === 'random' ? (name: string, shape: readonly number[]) => randomTensorPlan(name, shape, w.seed) : null;
  const files = cudaRunnerFiles(program, kernels, random, weightFormats(program));
  for (const [path, text] of files) {
    mkdirSync(dirname(join(out, path)), { recursive: true });
    writeFileSync(join(out, path), text);
  }
  chmodSync(join(out, 'build.sh'), 0o755);
  return files.size;
}

/**
 * What the runner's weight loader needs of the readers in runtime/weights, as tables: GGUF's
 * tensor types, safetensors' dtypes, and each param's tensor names there (ggufBind.ts: the
 * GGUF name, then the param's own; hfLlama.ts: the HF name or stacked experts, with q/k's
 * RoPE row reordering over the query or KV heads).
 */
export function weightFormats(program: Program): WeightFormats {
  const m = program.model;
  return {
    ggufTypes: [...TENSOR_TYPES.values()].map((t) => ({ id: t.id, name: t.name, blockSize: t.blockSize, blockBytes: t.blockBytes })),
    safetensorsTypes: Object.entries(DTYPE_BYTES).map(([name, bytes]) => ({ name, bytes, as: (LOADABLE_DTYPES as readonly string[]).includes(name) ? name.toLowerCase() : null })),
    bind(param, shape) {
      const hf = hfBinding(param);
      const experts = hf?.stackExperts ? Array.from({ length: shape[shape.length - 1] }, (_, e) => hf.name.replace('{E}', String(e))) : hf ? [hf.name] : [];
      return { gguf: [ggufTensorName(param), param], hf: experts, permuteHeads: hf?.permute === 'heads' ? m.heads : hf?.permute === 'kvHeads' ? m.kvHeads : 0 };
    },
  };
}
