// The CUDA engine: the ProgramRunner (runtime/runner/) over a CudaDevice, a generated host
// runner in --serve mode. Batching, speculative decoding and sampling are the runner's, as
// on WebGPU; this file only ties the runner process's life to its engines.
import { ProgramRunner, type RunnerOptions } from '../runner/programRunner.ts';
import type { CudaDevice } from './device.ts';

export interface CudaEngineOptions extends Omit<RunnerOptions, 'device' | 'shareWeightsWith'> {
  readonly device: CudaDevice;
  /** Bind the params this engine (same runner) holds under the same name, type and size instead of uploading them. */
  readonly shareWeightsWith?: CudaEngine;
}

export class CudaEngine extends ProgramRunner {
  static async create(o: CudaEngineOptions): Promise<CudaEngine> {
    const { bufs, kernels, setupMs } = await ProgramRunner.prepare(o);
    o.device.users++;
    return new CudaEngine(o, o.device, bufs, kernels, setupMs);
  }

  private get cudaDevice(): CudaDevice { return this.device as CudaDevice; }

  override dispose(): void {
    const first = !this.disposed;
    super.dispose();
    // The runner process goes with its last engine (a self-draft shares it).
    if (first && --this.cudaDevice.users === 0) void this.cudaDevice.close();
  }
}
