// A hot loop of GEMV dispatches straight on Dawn (no project code), the loop in which Dawn +
// lavapipe used to crash (a segfault in dawn::native::InstanceBase::ProcessEvents, "The futex
// facility returned an unexpected error code", std::system_error "Invalid argument"). The
// stress test (scripts/stress-opt.mjs) runs it with the object webgpu's create() returns held
// (global, local: clean with or without --no-opt) and dropped (temp: crashes either way, the
// real cause; scripts/repro-dawn-gc.mjs is the smallest reproducer).
//
//   export XDG_RUNTIME_DIR=/tmp
//   REPRO_MODE=global node scripts/stress-gemv-loop.mjs 5   # 5 runs in child processes, tallied
//   REPRO_MODE=local  node scripts/stress-gemv-loop.mjs 5
//   REPRO_MODE=temp   node scripts/stress-gemv-loop.mjs 5   # crashes: nothing holds the GPU object
//   (add --expose-gc to collect garbage every 100 dispatches)
//
// Modes differ only in who holds the GPU object that `create([])` returns:
//   temp:   nobody (`await create([]).requestAdapter()`); local: a local variable of the
//   function that runs the loop; global: a module-level array.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const runs = Number(process.argv[2] ?? 0);
if (runs > 0) {
  // Parent mode: run the repro in child processes with the same flags, count crashes.
  const self = fileURLToPath(import.meta.url);
  let crashed = 0;
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [...process.execArgv, self], { encoding: 'utf8', timeout: 300_000 });
    const ok = r.status === 0;
    if (!ok) crashed++;
    console.log(`run ${i + 1}: ${ok ? 'ok' : `crashed (status ${r.status}, signal ${r.signal}) ${(r.stderr ?? '').trim().split('\n').filter((l) => !l.startsWith('Warning:')).slice(-2).join(' | ')}`}`);
  }
  console.log(`${crashed} of ${runs} runs crashed (REPRO_MODE=${process.env.REPRO_MODE ?? 'temp'}, flags: ${process.execArgv.join(' ') || 'none'})`);
  process.exit(0);
}

const { create, globals } = await import('webgpu');
Object.assign(globalThis, globals);
const mode = process.env.REPRO_MODE ?? 'temp';
const retained = [];

async function main() {
  let adapter;
  if (mode === 'temp') adapter = await create([]).requestAdapter();
  else {
    const gpu = create([]);
    if (mode === 'global') retained.push(gpu);
    adapter = await gpu.requestAdapter();
  }
  if (!adapter) throw new Error('no WebGPU adapter (see scripts/setup.sh)');
  const device = await adapter.requestDevice();

  // A plain GEMV: y[n] = sum_k w[n*K + k] * x[k], one invocation per output.
  const K = 1024, N = 1024;
  const module = device.createShaderModule({ code: `
    @group(0) @binding(0) var<storage, read> w: array<f32>;
    @group(0) @binding(1) var<storage, read> x: array<f32>;
    @group(0) @binding(2) var<storage, read_write> y: array<f32>;
    @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
      if (g.x >= ${N}u) { return; }
      var acc = 0.0;
      for (var k = 0u; k < ${K}u; k++) { acc += w[g.x * ${K}u + k] * x[k]; }
      y[g.x] = acc;
    }` });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buf = (bytes, usage) => device.createBuffer({ size: bytes, usage });
  const w = buf(K * N * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const x = buf(K * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const y = buf(N * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const staging = buf(N * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(w, 0, new Float32Array(K * N).fill(0.001));
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [w, x, y].map((buffer, binding) => ({ binding, resource: { buffer } })) });

  // The hot loop: upload, dispatch, read back, reduce on the host, many times.
  let checksum = 0;
  const input = new Float32Array(K);
  for (let step = 0; step < 3000; step++) {
    for (let k = 0; k < K; k++) input[k] = Math.sin(step + k);
    device.queue.writeBuffer(x, 0, input);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(N / 64);
    pass.end();
    enc.copyBufferToBuffer(y, 0, staging, 0, N * 4);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange());
    for (let n = 0; n < N; n++) checksum += out[n];
    if (step % 100 === 0) globalThis.gc?.(); // make collection happen early, if --expose-gc
    staging.unmap();
  }
  console.log(`completed 3000 dispatches, checksum ${checksum.toFixed(3)}`);
  device.destroy();
}

await main();
