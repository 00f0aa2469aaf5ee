// The CLI's only contact with the WebGPU pieces (the WGSL backend and the Dawn
// device). It is imported lazily, so `infer check` and `--backend cpu` never
// load Dawn's native module.
import type { Backend } from '../backends/backend.ts';

export async function wgslBackend(): Promise<Backend> {
  const mod = await import('../backends/wgsl/render.ts');
  return mod.wgslBackend;
}

export async function cudaBackend(): Promise<Backend> {
  return (await import('../backends/cuda/render.ts')).cudaBackend;
}

export interface OpenGpu { readonly device: GPUDevice; readonly description: string; close(): void }

export async function openGpu(): Promise<OpenGpu> {
  const { createGpuDevice } = await import('../runtime/webgpu/device.ts');
  const device = await createGpuDevice();
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const description = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ') : 'WebGPU device';
  return { device, description, close: () => device.destroy() };
}
