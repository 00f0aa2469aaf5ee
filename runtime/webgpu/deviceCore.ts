// The WebGPU device from any GPU (navigator.gpu in a browser, Dawn's in node), and the
// few helpers every WebGPU user here needs (tests, the engine, benchmarks). Browser-safe:
// nothing here loads Dawn (device.ts does, for node), so a bundler takes the engine as is.
//
//   requestInferDevice(gpu)           -> GPUDevice with the limits our kernels need
//   uncapturedErrors(device)          -> drains errors nobody caught (and device loss)
//   storageBuffer(device, data)       -> a STORAGE buffer holding a typed array
//   zeroBuffer(device, bytes)         -> a zero-filled STORAGE buffer
//   readBuffer(device, buf, Ctor)     -> a typed-array copy of a buffer
//   stepUniform(device, tokens)       -> the (cached) `Step { tokens }` uniform buffer
//   compileKernel(device, rendered)   -> the (cached) pipeline of a RenderedKernel
//   runKernel(device, rendered, buffers, tokens) -> one dispatch, validated, awaited
import { CPU_TARGET, GPU_TARGET, gridFor, type RenderedKernel, type Target } from '../../backends/backend.ts';
import { packStepUniform, STEP_UNIFORM_BYTES } from '../../program/stepUniform.ts';

export class NoAdapterError extends Error {}
export class GpuError extends Error {}

const STORAGE = 0x80, COPY_SRC = 0x4, COPY_DST = 0x8, MAP_READ = 0x1, UNIFORM = 0x40, COMPUTE = 0x4;

const errorLog = new WeakMap<GPUDevice, string[]>();

/**
 * An adapter and device with: the adapter's largest storage binding and buffer sizes
 * (lavapipe: 128 MiB, its maximum), up to 10 storage buffers per stage, and the adapter's
 * workgroup limits. Never falls back silently: no adapter is a NoAdapterError.
 */
export async function requestInferDevice(gpu: GPU): Promise<GPUDevice> {
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new NoAdapterError('no WebGPU adapter: on Linux without a GPU this needs Mesa >= 25 lavapipe ' +
      '(mesa-vulkan-drivers from bookworm-backports; see scripts/setup.sh). Debian 12\'s Mesa 22.3 is refused by Dawn.');
  }
  const a = adapter.limits;
  const device = await adapter.requestDevice({
    label: 'infer',
    // Timestamps cost nothing until a profiler writes them (runtime/webgpu/profiler.ts).
    // shader-f16 where the adapter has it: f16 weights are then read as f16 (targetOf).
    // subgroups likewise: a CPU adapter's prefill matmul exchanges its inputs between lanes.
    requiredFeatures: (['timestamp-query', 'shader-f16', 'subgroups'] as const).filter((f) => adapter.features.has(f)),
    requiredLimits: {
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxBufferSize: a.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(a.maxStorageBuffersPerShaderStage, 10),
      maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    },
  });
  const log: string[] = [];
  errorLog.set(device, log);
  device.addEventListener('uncapturederror', (e) => log.push((e as GPUUncapturedErrorEvent).error.message));
  void device.lost.then((info) => { if (info.reason !== 'destroyed') log.push(`device lost: ${info.message}`); });
  return device;
}

/**
 * The tuning target of a device's adapter: a software fallback adapter (lavapipe reports
 * isFallbackAdapter and architecture 'software') runs kernels on the CPU. INFER_TARGET=gpu
 * or cpu overrides it, to measure one tuning on the other's device.
 */
export function targetOf(device: GPUDevice): Target {
  const env = typeof process === 'undefined' ? {} : process.env;
  const forced = env.INFER_TARGET;
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  const kind = forced === 'gpu' || forced === 'cpu' ? forced : info && (info.isFallbackAdapter || info.architecture === 'software') ? 'cpu' : 'gpu';
  // INFER_NO_SHADER_F16=1 reads f16 weights as u32 pairs even where shader-f16 exists (tests, comparisons).
  const f16 = device.features.has('shader-f16') && env.INFER_NO_SHADER_F16 !== '1';
  // A subgroup size the kernels can count on: the adapter's, when it has only one.
  // INFER_NO_SUBGROUPS=1 leaves subgroups unused (the fallback kernels, for comparisons).
  const sg = info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
  const subgroupSize = device.features.has('subgroups') && env.INFER_NO_SUBGROUPS !== '1' && sg?.subgroupMinSize && sg.subgroupMinSize === sg.subgroupMaxSize ? sg.subgroupMinSize : undefined;
  return { ...(kind === 'cpu' ? CPU_TARGET : GPU_TARGET), f16, ...(subgroupSize ? { subgroupSize } : {}) };
}

/** Errors no error scope caught since the last call (validation, out-of-memory, device loss). */
export function uncapturedErrors(device: GPUDevice): string[] {
  const log = errorLog.get(device);
  return log ? log.splice(0) : [];
}

/** A STORAGE | COPY_SRC | COPY_DST buffer holding `data` (size rounded up to 16 bytes, at least 16). */
export function storageBuffer(device: GPUDevice, data: Float32Array | Int32Array | Uint32Array, label?: string): GPUBuffer {
  const buf = device.createBuffer({ label, size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage: STORAGE | COPY_SRC | COPY_DST, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return buf;
}

/** A zero-filled STORAGE | COPY_SRC | COPY_DST buffer of at least `bytes` bytes. */
export function zeroBuffer(device: GPUDevice, bytes: number, label?: string): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: STORAGE | COPY_SRC | COPY_DST });
}

/** Copies `buffer` (or its first `bytes`) back to the host after all submitted work. */
export async function readBuffer<A extends Float32Array | Int32Array>(
  device: GPUDevice, buffer: GPUBuffer, Ctor: { new(b: ArrayBuffer): A } = Float32Array as unknown as { new(b: ArrayBuffer): A }, bytes = buffer.size,
): Promise<A> {
  const staging = device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: MAP_READ | COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, 0, staging, 0, staging.size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MAP_READ);
  const out = new Ctor(staging.getMappedRange().slice(0, bytes));
  staging.unmap();
  staging.destroy();
  return out;
}

const uniforms = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

/** The step uniform for `tokens` tokens and a split part's first column or id (program/stepUniform.ts), one buffer per (T, part). */
export function stepUniform(device: GPUDevice, tokens: number, part = 0): GPUBuffer {
  let byT = uniforms.get(device);
  if (!byT) uniforms.set(device, byT = new Map());
  const key = `${tokens}:${part}`;
  let buf = byT.get(key);
  if (!buf) {
    buf = device.createBuffer({ label: `step T=${tokens} part=${part}`, size: STEP_UNIFORM_BYTES, usage: UNIFORM | COPY_DST });
    device.queue.writeBuffer(buf, 0, packStepUniform(tokens, part) as Uint32Array<ArrayBuffer>);
    byT.set(key, buf);
  }
  return buf;
}

const pipelines = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();
const BINDING_TYPE = { read: 'read-only-storage', read_write: 'storage', uniform: 'uniform' } as const;

/** Compiles a kernel once per device (keyed by its source); shader errors throw GpuError with line numbers. */
export function compileKernel(device: GPUDevice, r: RenderedKernel): Promise<GPUComputePipeline> {
  let cache = pipelines.get(device);
  if (!cache) pipelines.set(device, cache = new Map());
  const id = `${r.entry}|${r.bindings.map((b) => b.access).join(',')}|${r.source}`;
  let p = cache.get(id);
  if (!p) {
    p = (async () => {
      const module = device.createShaderModule({ code: r.source, label: r.key });
      const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      if (errors.length) throw new GpuError(`${r.key} does not compile:\n${errors.map((e) => `  ${r.key}.wgsl:${e.lineNum}:${e.linePos}: ${e.message}`).join('\n')}`);
      const layout = device.createBindGroupLayout({
        label: r.key, entries: r.bindings.map((b, i) => ({ binding: i, visibility: COMPUTE, buffer: { type: BINDING_TYPE[b.access] } })),
      });
      return device.createComputePipelineAsync({ label: r.key, layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: r.entry } });
    })();
    p.catch(() => cache!.delete(id));
    cache.set(id, p);
  }
  return p;
}

/**
 * One dispatch of `r` over `tokens` tokens: binds `buffers[name]` for each binding (the
 * step uniform, with `part` = stepPart(spec), is supplied when not given), dispatches gridFor(r.grid, tokens), waits
 * for the queue, and throws GpuError on any validation error.
 */
export async function runKernel(device: GPUDevice, r: RenderedKernel, buffers: Readonly<Record<string, GPUBuffer>>, tokens: number, part = 0): Promise<void> {
  const pipeline = await compileKernel(device, r);
  const grid = gridFor(r.grid, tokens);
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  if (grid.some((g) => g > maxGroups)) throw new GpuError(`${r.key}: grid ${grid.join('x')} exceeds ${maxGroups} workgroups per dimension`);
  const entries = r.bindings.map((b, i) => {
    const buffer = buffers[b.name] ?? (b.access === 'uniform' ? stepUniform(device, tokens, part) : undefined);
    if (!buffer) throw new GpuError(`${r.key}: no buffer for binding ${b.name}`);
    return { binding: i, resource: { buffer } };
  });
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder({ label: r.key });
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
  pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  pass.end();
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  await device.queue.onSubmittedWorkDone();
  const late = uncapturedErrors(device);
  if (err || late.length) throw new GpuError(`${r.key}: ${[err?.message, ...late].filter(Boolean).join('\n')}`);
}
