// The Device interface: the few things a ProgramRunner needs of a compute device, in the
// spirit of ggml's backend interface and tinygrad's Allocator + Program pair. Everything
// that is about running a Program (buffers by name, variant choice, grids, page copies,
// logits readback) lives in the runner; a device only allocates, uploads, compiles, binds
// and runs a list of copies and dispatches, then reads some bytes back. WebGPU (Dawn in
// node, navigator.gpu in a browser) is one Device; a CUDA host runner can be another.
import type { RenderedKernel, Target } from '../../backends/backend.ts';

/** A device allocation. Devices return their own objects; the runner only reads these fields. */
export interface DeviceBuffer { readonly label: string; readonly bytes: number }
/** A compiled kernel variant. */
export interface DeviceKernel { readonly rendered: RenderedKernel }
/** A kernel's buffers bound in binding order (a bind group, an argument array). */
export interface DeviceBinding { readonly kernel: DeviceKernel }

export type BufferUse = 'storage' | 'uniform';

export interface DeviceLimits {
  /** Largest buffer one binding may see. */
  readonly maxBindingBytes: number;
  /** Largest single allocation. */
  readonly maxBufferBytes: number;
  /** Most workgroups (blocks) per grid dimension. */
  readonly maxGroupsPerDim: number;
}

/** A byte copy between buffers (from and to may be the same buffer: page copy-on-write). */
export interface DeviceCopy { readonly from: DeviceBuffer; readonly fromOffset: number; readonly to: DeviceBuffer; readonly toOffset: number; readonly bytes: number }
export interface DeviceDispatch { readonly binding: DeviceBinding; readonly grid: readonly [number, number, number] }
export interface DeviceReadback { readonly buffer: DeviceBuffer; readonly offset: number; readonly bytes: number }

/** One forward's work: copies first, then the dispatches in order, then the readbacks. */
export interface Submission {
  readonly copies: readonly DeviceCopy[];
  readonly dispatches: readonly DeviceDispatch[];
  readonly readbacks: readonly DeviceReadback[];
  /** Time every dispatch (devices that can: `timings` in the result). */
  readonly timed?: boolean;
}

export interface SubmissionResult {
  /** One per readback, in order. */
  readonly data: readonly Uint8Array[];
  /** Nanoseconds per dispatch, when timed and the device can time. */
  readonly timings?: Float64Array;
}

export class DeviceError extends Error {}

export interface Device {
  /** The engine name reports carry ('webgpu', 'cuda'). */
  readonly name: 'webgpu' | 'cuda';
  readonly description: string;
  readonly limits: DeviceLimits;
  /** What kernels are tuned for on this device (layout only, never results). */
  readonly target: Target;
  /** Whether `timed` submissions report per-dispatch timings. */
  readonly canTime: boolean;
  /** A zero-filled buffer of at least `bytes` bytes. */
  allocate(label: string, bytes: number, use: BufferUse): DeviceBuffer;
  upload(buffer: DeviceBuffer, offset: number, data: ArrayBufferView): void;
  compile(kernel: RenderedKernel): Promise<DeviceKernel>;
  bind(kernel: DeviceKernel, buffers: readonly DeviceBuffer[]): DeviceBinding;
  /** Runs the work in order; rejects with DeviceError when the device refuses or reports an error. */
  submit(work: Submission): Promise<SubmissionResult>;
  free(buffer: DeviceBuffer): void;
  /**
   * Waits until earlier uploads have reached their buffers, so the device can drop its
   * staging copies (optional: devices whose uploads are synchronous need none). Weight
   * uploads call it every so many bytes, so host memory never holds the whole model twice.
   */
  settle?(): Promise<void>;
}
