// How to compile CUDA source for the CPU emulation in this directory (tests and benchmarks:
// one translation unit, g++). -fno-weak keeps __shared__ statics of inline functions out of
// COMDAT groups, which GCC will not mix with plain statics in the poisoned emu_shared section
// (backends/cuda/runner/build.sh says what that costs and why it is harmless).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const EMU_DIR = fileURLToPath(new URL('.', import.meta.url));

/** g++ arguments for one translation unit against the emulation (ASan build on request). */
export function emuCompileArgs(o: { readonly asan?: boolean } = {}): string[] {
  return ['-std=c++20', o.asan ? '-O1' : '-O2', '-g0', '-fno-weak', ...(o.asan ? ['-fsanitize=address', '-fno-omit-frame-pointer'] : []), '-include', join(EMU_DIR, 'cuda_emu.h'), '-I', EMU_DIR];
}
