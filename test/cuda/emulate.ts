// Runs a rendered CUDA kernel on the CPU (backends/cuda/emu/cuda_emu.h) and returns its
// outputs: writes each binding as a binary file, a main() that loads them into exact-size
// buffers (so an ASan build sees a read one past the end), launches the kernel over its grid
// and writes the written bindings back, compiled with g++ against the emulation header.
// Also compiles sources with nvcc for sm_90 (no GPU needed), so what is tested here is what
// a GPU would be given.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gridFor, type RenderedKernel } from '../../backends/backend.ts';
import { cudaElementType } from '../../backends/cuda/render.ts';
import { emuCompileArgs } from '../../backends/cuda/emu/emuBuild.ts';
export { emuCompileArgs };
import type { KernelSpec } from '../../program/kernels.ts';

export const NVCC = process.env.NVCC ?? '/usr/local/bin/nvcc';

type Data = Float32Array | Int32Array | Uint32Array;

/** How to build and run the emulation: an AddressSanitizer build, and block / thread replay orders. */
export interface EmuOptions { readonly asan?: boolean; readonly reverseBlocks?: boolean; readonly reverseThreads?: boolean }

/** The environment that selects the replay orders. */
export function emuEnv(o: EmuOptions = {}): NodeJS.ProcessEnv {
  return { ...process.env, CUDA_EMU_BLOCK_ORDER: o.reverseBlocks ? 'reverse' : 'forward', CUDA_EMU_THREAD_ORDER: o.reverseThreads ? 'reverse' : 'forward', ASAN_OPTIONS: 'detect_leaks=0' };
}

/** Runs `k` for a step of T tokens; `outputs` are written bindings (element count, or initial contents). */
export function runOnCpu(k: RenderedKernel, spec: KernelSpec, T: number, inputs: Record<string, Data>, outputs: Record<string, number | Float32Array>, o: EmuOptions = {}): Record<string, Float32Array> {
  const dir = mkdtempSync(join(tmpdir(), 'infer-cuda-emu-'));
  try {
    const names = k.bindings.filter((b) => b.access !== 'uniform').map((b) => b.name);
    const arrays = names.map((n) => {
      const init = inputs[n] ?? outputs[n];
      if (init === undefined) throw new Error(`no data for binding ${n}`);
      const data = typeof init === 'number' ? new Float32Array(init) : init;
      writeFileSync(join(dir, `${n}.bin`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return { n, type: cudaElementType(spec, n), written: k.bindings.find((b) => b.name === n)!.access === 'read_write' };
    });
    const [gx, gy, gz] = gridFor(k.grid, T);
    const main = [
      '#include <cstdio>',
      '#include <fstream>',
      'template <class T> std::vector<T> load(const char* p) { std::ifstream f(p, std::ios::binary | std::ios::ate); size_t n = f.tellg(); f.seekg(0); std::vector<T> v(n / sizeof(T)); f.read((char*)v.data(), n); return v; }',
      'template <class T> void save(const char* p, const std::vector<T>& v, size_t n) { std::ofstream f(p, std::ios::binary); f.write((const char*)v.data(), n * sizeof(T)); }',
      '#include "kernel.cu"',
      'int main() {',
      ...arrays.map((a) => `  auto ${a.n} = load<${a.type}>("${a.n}.bin"); const size_t ${a.n}_n = ${a.n}.size();`),
      `  const Step step{${T}u, 0u, 0u, 0u};`,
      `  emu_launch(dim3{${gx}, ${gy}, ${gz}}, dim3{${k.workgroup.join(', ')}}, [&] { ${k.entry}(step, ${arrays.map((a) => `${a.n}.data()`).join(', ')}); });`,
      ...arrays.filter((a) => a.written).map((a) => `  save("${a.n}.out", ${a.n}, ${a.n}_n);`),
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'kernel.cu'), k.source);
    writeFileSync(join(dir, 'main.cpp'), main);
    execFileSync('g++', [...emuCompileArgs(o), '-o', join(dir, 'run'), join(dir, 'main.cpp')], { cwd: dir, stdio: 'pipe' });
    execFileSync(join(dir, 'run'), [], { cwd: dir, stdio: 'pipe', env: emuEnv(o) });
    const out: Record<string, Float32Array> = {};
    for (const a of arrays.filter((x) => x.written)) {
      const b = readFileSync(join(dir, `${a.n}.out`));
      out[a.n] = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Compiles CUDA sources with nvcc to sm_90 cubins; throws with nvcc's messages on an error. */
export function nvccCompile(sources: readonly { name: string; source: string }[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'infer-nvcc-'));
  try {
    for (const s of sources) {
      const file = join(dir, `${s.name}.cu`);
      writeFileSync(file, s.source);
      try {
        execFileSync(NVCC, ['-arch=sm_90', '-cubin', '-o', join(dir, `${s.name}.cubin`), file], { stdio: 'pipe' });
      } catch (e) {
        const err = e as { stderr?: Buffer };
        throw new Error(`nvcc rejected ${s.name}:\n${err.stderr?.toString() ?? String(e)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
