// Compiles many rendered CUDA kernels with nvcc in one invocation per batch: the kernels of a
// batch go into one .cu, each in its own namespace with its entry renamed infer_kernel_<i>
// (cuda_fp16.h is included once at the top; its include guard makes the kernels' own includes
// no-ops), built for sm_80 and sm_90 with warnings as errors and ptxas's resource report,
// which is parsed per entry: registers, stack frame and spill bytes.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CUDA_ENTRY } from '../../backends/cuda/render.ts';

export const NVCC = process.env.NVCC ?? '/usr/local/bin/nvcc';
export const ARCHS = ['sm_80', 'sm_90'] as const;

export interface KernelUsage {
  readonly name: string;
  readonly arch: string;
  readonly registers: number;
  readonly stackBytes: number;
  readonly spillStores: number;
  readonly spillLoads: number;
}

const run = promisify(execFile);

/** The batch's single source: every kernel in a namespace of its own, entries numbered. */
export function batchSource(sources: readonly { name: string; source: string }[]): string {
  const parts = sources.map((s, i) => `// ${s.name}\nnamespace k${i} {\n${s.source.replace(new RegExp(`\\b${CUDA_ENTRY}\\(`), `${CUDA_ENTRY}_${i}(`)}\n}\n`);
  return ['#include <cuda_fp16.h>', ...parts].join('\n');
}

/** Compiles one batch; rejects with nvcc's messages on any error or warning. Returns per-entry usage. */
export async function nvccBatch(sources: readonly { name: string; source: string }[]): Promise<KernelUsage[]> {
  const dir = mkdtempSync(join(tmpdir(), 'infer-nvcc-'));
  try {
    const file = join(dir, 'kernels.cu');
    writeFileSync(file, batchSource(sources));
    const gencode = ARCHS.flatMap((a) => ['-gencode', `arch=compute_${a.slice(3)},code=${a}`]);
    let stderr: string;
    try {
      ({ stderr } = await run(NVCC, ['-c', '-o', join(dir, 'kernels.o'), ...gencode, '-Werror', 'all-warnings', '-Xptxas', '-v,-warn-spills,-warn-lmem-usage', file], { maxBuffer: 64 << 20 }));
    } catch (e) {
      const err = e as { stderr?: string };
      throw new Error(`nvcc rejected a batch of ${sources.length} kernels (${sources[0]?.name} ...):\n${err.stderr ?? String(e)}`);
    }
    return parseUsage(stderr, sources.map((s) => s.name));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** ptxas -v lines: "Compiling entry function 'infer_kernel_3' for 'sm_90'", then the frame and register lines. */
export function parseUsage(log: string, names: readonly string[]): KernelUsage[] {
  const out: KernelUsage[] = [];
  const re = new RegExp(`Compiling entry function '${CUDA_ENTRY}_(\\d+)' for '(sm_\\d+)'[\\s\\S]*?(\\d+) bytes stack frame, (\\d+) bytes spill stores, (\\d+) bytes spill loads[\\s\\S]*?Used (\\d+) registers`, 'g');
  for (const m of log.matchAll(re)) {
    out.push({ name: names[Number(m[1])], arch: m[2], stackBytes: Number(m[3]), spillStores: Number(m[4]), spillLoads: Number(m[5]), registers: Number(m[6]) });
  }
  return out;
}
