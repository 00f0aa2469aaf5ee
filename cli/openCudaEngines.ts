// `--backend cuda` / `cuda-emu`: the programs' CUDA host runner built (once, cached by the
// hash of its generated sources: runtime/cuda/build.ts), started in --serve mode, and a
// CudaEngine per request over it: the same ProgramRunner as WebGPU, so batching,
// speculative decoding and sampling are shared. `cuda` builds with nvcc when nvidia-smi
// answers, else runs the CPU emulation (the device description says which); `cuda-emu`
// always emulates. INFER_CUDA_RUNNER names a runner built elsewhere (e.g. one nvcc build
// for several models): each kernel is looked up in it by key and checked against its source
// hash, so a runner lacking one, or built from another rendering, is refused by name.
// Weights reach the device through uploads, whatever their source.
import { freemem } from 'node:os';
import { backendEntry } from '../backends/registry.ts';
import { buildServeRunner, CudaBuildError, hasCudaGpu, type CudaBuildMode } from '../runtime/cuda/build.ts';
import { CudaDevice } from '../runtime/cuda/device.ts';
import { CudaEngine } from '../runtime/cuda/engine.ts';
import type { PoolOptions } from '../runtime/pagedEngine.ts';
import type { EngineRequest, OpenEngines } from './openEngine.ts';

export async function openCudaEngines(backend: 'cuda' | 'cuda-emu', requests: readonly EngineRequest[], pool: PoolOptions): Promise<OpenEngines> {
  const cuda = await backendEntry('cuda').load();
  const prebuilt = process.env.INFER_CUDA_RUNNER;
  const mode = (): CudaBuildMode => (backend === 'cuda' && hasCudaGpu() ? 'cuda' : 'emu');
  const binary = prebuilt ?? (await buildServeRunner(requests.map((r) => r.program), cuda, mode())).binary;
  const device = await CudaDevice.open(binary);
  if (backend === 'cuda-emu' && !device.emulated) {
    await device.close();
    throw new CudaBuildError(`--backend cuda-emu runs the CPU emulation, but INFER_CUDA_RUNNER names a GPU build (${binary}); use --backend cuda`);
  }
  const made: CudaEngine[] = [];
  const close = () => {
    for (const e of made) e.dispose();
    if (!made.length) void device.close();
  };
  try {
    for (const r of requests) {
      const owner = requests.findIndex((o) => o.weights === r.weights);
      made.push(await CudaEngine.create({
        device, program: r.program, backend: cuda, weights: r.weights, ...pool, moeStats: r.moeStats ?? false,
        // The emulation's device memory is this process's host's.
        ...(device.emulated ? { deviceMemoryBytes: freemem() } : {}),
        ...(owner < made.length ? { shareWeightsWith: made[owner] } : {}),
      }));
    }
    for (const r of new Set(requests.map((q) => q.weights))) r.release?.();
    return { engines: made, device: device.description, close };
  } catch (e) {
    close();
    throw e;
  }
}
