// The substrate's streaming-read ceiling: a kernel in which each invocation sums a
// contiguous block of vec4<f32>, the best of the layouts measured on lavapipe
// (ENVIRONMENT.md). Decode bandwidth is reported as a fraction of this figure,
// measured on the same adapter in the same run, never as an absolute number.
const WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
const PER_THREAD: u32 = 256u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let start = gid.x * PER_THREAD;
  var acc = vec4<f32>(0.0);
  for (var i = 0u; i < PER_THREAD; i = i + 1u) { acc = acc + src[start + i]; }
  sums[gid.x] = acc.x + acc.y + acc.z + acc.w;
}`;

export interface StreamingResult { readonly bytes: number; readonly bestMs: number; readonly gbPerS: number }

/** Reads `mib` MiB `repeats` times; returns the best time (the ceiling, not the typical). */
export async function measureStreaming(device: GPUDevice, mib = 64, repeats = 5): Promise<StreamingResult> {
  const bytes = mib * 1024 * 1024;
  const threads = bytes / 16 / 256;
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const sums = device.createBuffer({ size: threads * 4, usage: GPUBufferUsage.STORAGE });
  device.queue.writeBuffer(src, 0, new Float32Array(bytes / 4).fill(1));
  const module = device.createShaderModule({ code: WGSL });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: sums } }] });
  let best = Infinity;
  for (let r = 0; r < repeats + 1; r++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(threads / 64);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const ms = performance.now() - t0;
    if (r > 0) best = Math.min(best, ms); // the first run warms caches and the pipeline
  }
  src.destroy();
  sums.destroy();
  return { bytes, bestMs: best, gbPerS: bytes / (best / 1000) / 1e9 };
}
