// Smallest known reproducer of the Dawn crash once blamed on V8's optimising compiler
// (the reason for `node --no-opt`; see scripts/stress-gemv-loop.mjs and scripts/stress-opt.mjs).
// Only the `webgpu` package, no shaders, no buffers, no hot loop:
//
//   export XDG_RUNTIME_DIR=/tmp/infer-xdg
//   node --expose-gc scripts/repro-dawn-gc.mjs            # crashes: SIGSEGV, or SIGABRT with
//   node --no-opt --expose-gc scripts/repro-dawn-gc.mjs   #   "The futex facility returned an
//                                                         #   unexpected error code" / std::system_error
//                                                         #   "Invalid argument" (same with --no-opt)
//   HOLD=1 node --expose-gc scripts/repro-dawn-gc.mjs     # prints ok, every run
//
// Trigger: the GPU object that webgpu's create() returns becomes unreachable and is
// garbage-collected while a device made from it is still in use. The next
// queue.onSubmittedWorkDone() (any promise Dawn resolves by polling) runs
// dawn::native::InstanceBase::ProcessEvents (from wgpu::binding::AsyncRunner::
// ScheduleProcessEvents) on the freed instance: a segfault there, or a destroyed mutex
// (futex EINVAL -> std::system_error, abort). With N=0 it still crashes at exit, sometimes.
// The adapter object may be collected safely; only the GPU (instance) object matters.
// The optimiser only changes when the object becomes collectable, not whether: hold it
// (runtime/webgpu/device.ts keeps it in a module variable) and the crash is gone with or
// without --no-opt. Measured: 6 of 6 runs crash without HOLD (3 with, 3 without --no-opt,
// N=5), 0 of 3 with HOLD=1 (webgpu 0.6.2, Mesa 25.0.7 lavapipe, node 20.20).
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
if (!globalThis.gc) throw new Error('run with node --expose-gc');
const held = process.env.HOLD === '1' ? [] : null;

async function getDevice() {
  const gpu = create([]);
  held?.push(gpu);          // HOLD=1: keep the GPU object reachable
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  return adapter.requestDevice();
}

const device = await getDevice();
globalThis.gc();            // collects the GPU object unless held
for (let i = 0; i < Number(process.env.N ?? 5); i++) {
  device.queue.submit([device.createCommandEncoder().finish()]);
  await device.queue.onSubmittedWorkDone();
}
console.log('ok');
