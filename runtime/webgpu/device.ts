// The WebGPU device in node: Dawn's bindings (`webgpu`) as the GPU, or any GPU passed in
// (navigator.gpu). Everything that works without Dawn lives in deviceCore.ts, which the
// browser-safe engine imports; this file adds only the node default.
import { requestInferDevice } from './deviceCore.ts';

export * from './deviceCore.ts';

export interface GpuDeviceOptions {
  /** A GPU to use (e.g. navigator.gpu); default: Dawn's node bindings. */
  readonly gpu?: GPU;
}

// Held for the life of the process: if Dawn's GPU object (what webgpu's create() returns) is
// garbage-collected while a device made from it is in use, Dawn crashes in
// InstanceBase::ProcessEvents, with or without V8's optimising compiler
// (scripts/repro-dawn-gc.mjs). Holding it is what makes `node --no-opt` unnecessary: the
// stress test (scripts/stress-opt.mjs) ran thousands of forwards with forced GC, clean.
let dawn: GPU | undefined;

async function nodeGpu(): Promise<GPU> {
  if (!dawn) {
    const { create, globals } = await import('webgpu');
    // GPUBufferUsage, GPUMapMode, ... as globals, as in a browser.
    Object.assign(globalThis, globals);
    dawn = create([]);
  }
  return dawn;
}

/** requestInferDevice on `opts.gpu`, or on Dawn's node GPU (held for the life of the process). */
export async function createGpuDevice(opts: GpuDeviceOptions = {}): Promise<GPUDevice> {
  return requestInferDevice(opts.gpu ?? await nodeGpu());
}
