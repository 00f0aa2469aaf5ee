// The WebGPU engine: the ProgramRunner (runtime/runner/) over a WebGpuDevice. Everything
// about running a Program lives in the runner; this file only wraps a GPUDevice.
import { ProgramRunner, type RunnerOptions } from '../runner/programRunner.ts';
import { WebGpuDevice } from './gpuDevice.ts';

export type { StepProfile } from '../runner/programRunner.ts';

export interface WebGpuEngineOptions extends Omit<RunnerOptions, 'device' | 'shareWeightsWith'> {
  readonly device: GPUDevice;
  /** Bind the params this engine (same device) holds under the same name, type and size instead of uploading them. */
  readonly shareWeightsWith?: WebGpuEngine;
}

export class WebGpuEngine extends ProgramRunner {
  static async create(o: WebGpuEngineOptions): Promise<WebGpuEngine> {
    const device = o.shareWeightsWith?.gpuDevice.gpu === o.device ? o.shareWeightsWith.gpuDevice : new WebGpuDevice(o.device);
    const ro: RunnerOptions = { ...o, device };
    const { bufs, kernels, setupMs } = await ProgramRunner.prepare(ro);
    device.users++;
    return new WebGpuEngine(ro, device, bufs, kernels, setupMs);
  }

  private get gpuDevice(): WebGpuDevice { return this.device as WebGpuDevice; }

  override dispose(): void {
    const first = !this.disposed;
    super.dispose();
    // The device's readback, scratch and timing buffers go with its last engine (a self-draft shares it).
    if (first && --this.gpuDevice.users === 0) this.gpuDevice.dispose();
  }
}
