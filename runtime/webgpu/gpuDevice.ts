// WebGPU as a runner Device (runtime/runner/device.ts): Dawn in node, navigator.gpu in a
// browser. One submission is one command encoder: page copies (a copy within one buffer
// goes through a scratch buffer: WebGPU forbids overlapping source and destination), one
// compute pass for every dispatch (one timestamped pass per dispatch when timed), then the
// readbacks into a staging buffer that grows to the largest readback seen.
import type { RenderedKernel } from '../../backends/backend.ts';
import { DeviceError, type BufferUse, type Device, type DeviceBinding, type DeviceBuffer, type DeviceKernel, type Submission, type SubmissionResult } from '../runner/device.ts';
import { compileKernel, targetOf, uncapturedErrors } from './deviceCore.ts';
import { DispatchTimer } from './profiler.ts';

// The WebGPU flag values, spelled out so this file does not need the GPU* globals installed.
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;

interface GpuBuf extends DeviceBuffer { readonly gpu: GPUBuffer }
interface GpuKernel extends DeviceKernel { readonly pipeline: GPUComputePipeline }
interface GpuBinding extends DeviceBinding { readonly group: GPUBindGroup; readonly pipeline: GPUComputePipeline }

const round16 = (n: number): number => Math.max(16, Math.ceil(n / 16) * 16);

export class WebGpuDevice implements Device {
  readonly name = 'webgpu' as const;
  readonly limits;
  readonly target;
  readonly canTime: boolean;
  /** Engines using this device (runtime/webgpu/engine.ts): its own buffers go with the last. */
  users = 0;
  private staging: GPUBuffer | null = null;
  private scratch: GPUBuffer | null = null;
  private timer: DispatchTimer | null = null;

  constructor(readonly gpu: GPUDevice, readonly description = describe(gpu)) {
    this.limits = {
      maxBindingBytes: gpu.limits.maxStorageBufferBindingSize, maxBufferBytes: gpu.limits.maxBufferSize,
      maxGroupsPerDim: gpu.limits.maxComputeWorkgroupsPerDimension,
    };
    this.target = targetOf(gpu);
    this.canTime = gpu.features.has('timestamp-query');
  }

  allocate(label: string, bytes: number, use: BufferUse): DeviceBuffer {
    const usage = use === 'uniform' ? USAGE.UNIFORM | USAGE.COPY_DST : USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC;
    const gpu = this.gpu.createBuffer({ label, size: round16(bytes), usage });
    const b: GpuBuf = { label, bytes: gpu.size, gpu };
    return b;
  }

  async settle(): Promise<void> {
    // writeBuffer stages its data until the queue's next submission: submit (nothing), wait.
    this.gpu.queue.submit([]);
    await this.gpu.queue.onSubmittedWorkDone();
  }

  upload(buffer: DeviceBuffer, offset: number, data: ArrayBufferView): void {
    // The WebGPU typings want an ArrayBuffer-backed view; Dawn copies either kind.
    this.gpu.queue.writeBuffer((buffer as GpuBuf).gpu, offset, data as Uint8Array<ArrayBuffer>);
  }

  async compile(rendered: RenderedKernel): Promise<DeviceKernel> {
    this.gpu.pushErrorScope('validation');
    const pipeline = await compileKernel(this.gpu, rendered).catch(async (e: unknown) => {
      await this.gpu.popErrorScope();
      throw new DeviceError(`kernel ${rendered.key} (variant for >= ${rendered.minTokens} tokens): ${e instanceof Error ? e.message : String(e)}`);
    });
    const err = await this.gpu.popErrorScope();
    if (err) throw new DeviceError(`kernel ${rendered.key} (variant for >= ${rendered.minTokens} tokens) was rejected: ${err.message}`);
    const k: GpuKernel = { rendered, pipeline };
    return k;
  }

  bind(kernel: DeviceKernel, buffers: readonly DeviceBuffer[]): DeviceBinding {
    const k = kernel as GpuKernel;
    const group = this.gpu.createBindGroup({
      layout: k.pipeline.getBindGroupLayout(0), label: k.rendered.key,
      entries: buffers.map((b, i) => ({ binding: i, resource: { buffer: (b as GpuBuf).gpu } })),
    });
    const b: GpuBinding = { kernel, group, pipeline: k.pipeline };
    return b;
  }

  async submit(work: Submission): Promise<SubmissionResult> {
    const total = work.readbacks.reduce((a, r) => a + Math.ceil(r.bytes / 4) * 4, 0);
    const staging = this.stagingFor(total);
    const timer = work.timed ? this.timerFor(work.dispatches.length) : null;
    this.gpu.pushErrorScope('validation');
    const enc = this.gpu.createCommandEncoder({ label: 'forward' });
    for (const c of work.copies) {
      const from = (c.from as GpuBuf).gpu, to = (c.to as GpuBuf).gpu;
      if (from !== to) { enc.copyBufferToBuffer(from, c.fromOffset, to, c.toOffset, c.bytes); continue; }
      const scratch = this.scratchFor(c.bytes);
      enc.copyBufferToBuffer(from, c.fromOffset, scratch, 0, c.bytes);
      enc.copyBufferToBuffer(scratch, 0, to, c.toOffset, c.bytes);
    }
    const shared = timer ? null : enc.beginComputePass();
    work.dispatches.forEach((d, i) => {
      const b = d.binding as GpuBinding;
      const pass = shared ?? timer!.pass(enc, i);
      pass.setPipeline(b.pipeline);
      pass.setBindGroup(0, b.group);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
      if (!shared) pass.end();
    });
    shared?.end();
    timer?.finish(enc, work.dispatches.length);
    let at = 0;
    const spans = work.readbacks.map((r) => {
      if (r.bytes > 0) enc.copyBufferToBuffer((r.buffer as GpuBuf).gpu, r.offset, staging!, at, Math.ceil(r.bytes / 4) * 4);
      const span = [at, r.bytes] as const;
      at += Math.ceil(r.bytes / 4) * 4;
      return span;
    });
    this.gpu.queue.submit([enc.finish()]);
    const err = await this.gpu.popErrorScope();
    if (err) throw new DeviceError(`WebGPU rejected the forward pass: ${err.message}`);
    let data: Uint8Array[] = [];
    if (staging && total > 0) {
      await staging.mapAsync(USAGE.MAP_READ, 0, total);
      const all = staging.getMappedRange(0, total);
      data = spans.map(([o, n]) => new Uint8Array(all.slice(o, o + n)));
      staging.unmap();
    } else data = spans.map(() => new Uint8Array(0));
    const timings = timer ? await timer.collect(work.dispatches.length) : undefined;
    // Errors outside any scope (device loss, out-of-memory) surface here, not as silent zeros.
    const late = uncapturedErrors(this.gpu);
    if (late.length) throw new DeviceError(`WebGPU reported during the forward pass: ${late.join('; ')}`);
    return { data, timings };
  }

  free(buffer: DeviceBuffer): void { (buffer as GpuBuf).gpu.destroy(); }

  /** Frees the device's own staging, scratch and timing buffers (not the GPUDevice). */
  dispose(): void {
    this.staging?.destroy(); this.scratch?.destroy(); this.timer?.destroy();
    this.staging = this.scratch = null; this.timer = null;
  }

  private stagingFor(bytes: number): GPUBuffer | null {
    if (bytes === 0) return this.staging;
    if (!this.staging || this.staging.size < bytes) {
      this.staging?.destroy();
      this.staging = this.gpu.createBuffer({ label: 'readback', size: round16(bytes), usage: USAGE.MAP_READ | USAGE.COPY_DST });
    }
    return this.staging;
  }

  private scratchFor(bytes: number): GPUBuffer {
    if (!this.scratch || this.scratch.size < bytes) {
      this.scratch?.destroy();
      this.scratch = this.gpu.createBuffer({ label: 'copy-scratch', size: round16(bytes), usage: USAGE.COPY_SRC | USAGE.COPY_DST });
    }
    return this.scratch;
  }

  private timerFor(dispatches: number): DispatchTimer {
    if (!this.timer || this.timer.capacity < dispatches) {
      this.timer?.destroy();
      this.timer = new DispatchTimer(this.gpu, dispatches);
    }
    return this.timer;
  }
}

function describe(device: GPUDevice): string {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  return info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ') : 'WebGPU device';
}
