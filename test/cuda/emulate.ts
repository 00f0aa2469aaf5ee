// Runs a rendered CUDA kernel on the CPU (backends/cuda/emu/cuda_emu.h) and returns its
// outputs: writes each binding as a binary file, a main() that loads them into exact-size
// buffers (so an ASan build sees a read one past the end), launches the kernel over its grid
// and writes the written bindings back, compiled with g++ against the emulation header.
// (nvccBatch.ts compiles the same sources with nvcc for the GPU.)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gridFor, type RenderedKernel } from '../../backends/backend.ts';
import { cudaElementType } from '../../backends/cuda/render.ts';
import { emuCompileArgs } from '../../backends/cuda/emu/emuBuild.ts';
import { batchSource } from './nvccBatch.ts';
import type { KernelSpec } from '../../program/kernels.ts';
export { emuCompileArgs };

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
  return runKernelsOnCpu([{ kernel: k, spec }], T, inputs, outputs, o);
}

/** A kernel to run: over `tokens` tokens (default: the call's T), binding names mapped to buffer names by `bind` (default: the same name). */
export interface Launch { readonly kernel: RenderedKernel; readonly spec: KernelSpec; readonly tokens?: number; readonly bind?: Readonly<Record<string, string>> }

/**
 * Runs kernels in order over one set of buffers bound by binding name (as runOnGpu does):
 * `inputs` and `outputs` (element count, or initial contents) are the buffers; the outputs'
 * contents afterwards are returned (raw 32-bit words, viewed as f32). One program: each
 * kernel in a namespace of its own (nvccBatch.ts's batchSource), compiled with g++.
 */
export function runKernelsOnCpu(
  kernels: readonly Launch[], T: number,
  inputs: Record<string, Data>, outputs: Record<string, number | Float32Array>, o: EmuOptions = {},
): Record<string, Float32Array> {
  const dir = mkdtempSync(join(tmpdir(), 'infer-cuda-emu-'));
  try {
    const buffers = [...Object.keys(inputs), ...Object.keys(outputs)];
    buffers.forEach((n, i) => {
      const init = inputs[n] ?? outputs[n];
      const data = typeof init === 'number' ? new Float32Array(init) : init;
      writeFileSync(join(dir, `b${i}.bin`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    const launches = kernels.map(({ kernel: k, spec, tokens = T, bind = {} }, i) => {
      const args = k.bindings.filter((b) => b.access !== 'uniform').map((b) => {
        const at = buffers.indexOf(bind[b.name] ?? b.name);
        if (at < 0) throw new Error(`no buffer for binding ${b.name} of ${k.key}`);
        return `reinterpret_cast<${cudaElementType(spec, b.name)}*>(b${at}.data())`;
      });
      const [gx, gy, gz] = gridFor(k.grid, tokens);
      return `  emu_launch(dim3{${gx}, ${gy}, ${gz}}, dim3{${k.workgroup.join(', ')}}, [&] { k${i}::${k.entry}_${i}(k${i}::Step{${tokens}u, 0u, 0u, 0u}, ${args.join(', ')}); });`;
    });
    const main = [
      '#include <cstdio>',
      '#include <fstream>',
      'static std::vector<uint32_t> load(const char* p) { std::ifstream f(p, std::ios::binary | std::ios::ate); size_t n = f.tellg(); f.seekg(0); std::vector<uint32_t> v(n / 4); f.read((char*)v.data(), n); return v; }',
      'static void save(const char* p, const std::vector<uint32_t>& v) { std::ofstream f(p, std::ios::binary); f.write((const char*)v.data(), v.size() * 4); }',
      batchSource(kernels.map(({ kernel }) => ({ name: kernel.key, source: kernel.source }))),
      'int main() {',
      ...buffers.map((_, i) => `  auto b${i} = load("b${i}.bin");`),
      ...launches,
      ...Object.keys(outputs).map((n) => `  save("b${buffers.indexOf(n)}.out", b${buffers.indexOf(n)});`),
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'main.cpp'), main);
    execFileSync('g++', [...emuCompileArgs(o), '-o', join(dir, 'run'), join(dir, 'main.cpp')], { cwd: dir, stdio: 'pipe' });
    execFileSync(join(dir, 'run'), [], { cwd: dir, stdio: 'pipe', env: emuEnv(o) });
    const out: Record<string, Float32Array> = {};
    for (const n of Object.keys(outputs)) {
      const b = readFileSync(join(dir, `b${buffers.indexOf(n)}.out`));
      out[n] = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
