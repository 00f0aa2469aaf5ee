// The one place the CLI opens engines: the CPU interpreter, or the ProgramRunner on a
// WebGPU device or a CUDA host runner (cli/openCudaEngines.ts). Several programs (a target and its draft) share one device, and a
// self-draft binds the target's weight buffers. WebGPU pieces load lazily, so `infer
// check` and `--backend cpu` never load Dawn's native module.
import { freemem } from 'node:os';
import type { Graph } from '../compiler/ir/graph.ts';
import type { Program } from '../program/program.ts';
import type { WeightSource } from '../program/weights.ts';
import { backendEntry } from '../backends/registry.ts';
import { CpuEngine } from '../runtime/cpu/engine.ts';
import type { Engine } from '../runtime/engine.ts';
import type { PoolOptions } from '../runtime/pagedEngine.ts';

/** No GPU to run on: the message suggests --backend cpu. */
export class NoGpuError extends Error {}

export const ENGINE_BACKENDS = ['webgpu', 'cpu', 'cuda', 'cuda-emu'] as const;
export type EngineBackendName = (typeof ENGINE_BACKENDS)[number];
export const isEngineBackend = (name: string): name is EngineBackendName => (ENGINE_BACKENDS as readonly string[]).includes(name);

export interface EngineRequest {
  readonly program: Program;
  readonly graph: Graph;
  readonly weights: WeightSource;
  /** Collect MoE routing counts (moeStats()). */
  readonly moeStats?: boolean;
}

export interface OpenEngines {
  /** One per request, in order. */
  readonly engines: Engine[];
  /** The device, in words (WebGPU). */
  readonly device?: string;
  close(): void;
}

/**
 * A software adapter (lavapipe) allocates device buffers in this process: its memory is the
 * host's free memory, checked before allocating. A hardware adapter's is not exposed by
 * WebGPU (its per-buffer limits are still checked).
 */
function softwareMemory(software: boolean): number | undefined {
  return software ? freemem() : undefined;
}

/** Opens an engine per request on `backend`; requests with the same weights object share the weight buffers. */
export async function openEngines(backend: EngineBackendName, requests: readonly EngineRequest[], pool: PoolOptions): Promise<OpenEngines> {
  if (backend === 'cpu') {
    const engines = requests.map((r) => new CpuEngine(r.graph, r.weights, r.program, pool));
    return { engines, close: () => { for (const e of engines) e.dispose(); } };
  }
  if (backend === 'cuda' || backend === 'cuda-emu') return (await import('./openCudaEngines.ts')).openCudaEngines(backend, requests, pool);
  const { createGpuDevice, NoAdapterError, targetOf } = await import('../runtime/webgpu/device.ts');
  const { WebGpuEngine } = await import('../runtime/webgpu/engine.ts');
  let device: GPUDevice;
  try { device = await createGpuDevice(); } catch (e) {
    // One line a user can act on; the driver details stay one flag away (INFER_DEBUG=1).
    if (e instanceof NoAdapterError) throw new NoGpuError(`no WebGPU adapter found: run on the CPU with --backend cpu${process.env.INFER_DEBUG === '1' ? ` (${e.message})` : ' (INFER_DEBUG=1 says why)'}`);
    throw e;
  }
  const made: import('../runtime/webgpu/engine.ts').WebGpuEngine[] = [];
  const close = () => { for (const e of made) e.dispose(); device.destroy(); };
  try {
    const wgsl = await backendEntry('wgsl').load();
    for (const r of requests) {
      const owner = requests.findIndex((o) => o.weights === r.weights);
      made.push(await WebGpuEngine.create({
        device, program: r.program, backend: wgsl, weights: r.weights, ...pool, moeStats: r.moeStats ?? false, deviceMemoryBytes: softwareMemory(targetOf(device).kind === 'cpu'),
        ...(owner < made.length ? { shareWeightsWith: made[owner] } : {}),
      }));
    }
    // The device holds the weights now: drop the host copies (raw blocks and f32 tensors).
    for (const r of new Set(requests.map((q) => q.weights))) r.release?.();
    return { engines: made, device: made[0]?.device.description, close };
  } catch (e) {
    close();
    throw e;
  }
}
