// Per-dispatch GPU time from timestamp queries: with a profiler, each dispatch of a forward
// runs in its own compute pass that writes a timestamp at its start and end. Splitting the
// pass adds a little overhead of its own, so profile runs say where time goes, not how fast a
// normal forward is (bench/profile.ts reports both). Needs the 'timestamp-query' feature,
// which createGpuDevice asks for whenever the adapter has it.
import { MAP_READ } from './setup.ts';

const QUERY_RESOLVE = 0x0200, COPY_SRC = 0x0004, COPY_DST = 0x0008;

export class ProfilerError extends Error {}

/** Accumulated GPU nanoseconds and calls per step of the Program's dispatch list. */
export interface StepProfile { readonly label: string; readonly kernel: string; readonly ns: number; readonly calls: number }

export class DispatchProfiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private readonly read: GPUBuffer;
  private readonly ns: Float64Array;
  private readonly calls: Uint32Array;

  constructor(device: GPUDevice, private readonly steps: readonly { label: string; kernel: string }[]) {
    if (!device.features.has('timestamp-query')) {
      throw new ProfilerError("profiling needs the adapter's 'timestamp-query' feature, which this device lacks");
    }
    const n = 2 * steps.length;
    this.querySet = device.createQuerySet({ type: 'timestamp', count: n });
    this.resolve = device.createBuffer({ size: n * 8, usage: QUERY_RESOLVE | COPY_SRC });
    this.read = device.createBuffer({ size: n * 8, usage: MAP_READ | COPY_DST });
    this.ns = new Float64Array(steps.length);
    this.calls = new Uint32Array(steps.length);
  }

  /** The compute pass for dispatch i, with timestamps at its start and end. */
  pass(enc: GPUCommandEncoder, i: number): GPUComputePassEncoder {
    return enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /** Encodes the copy of this forward's timestamps; call after the last pass. */
  finish(enc: GPUCommandEncoder): void {
    enc.resolveQuerySet(this.querySet, 0, 2 * this.steps.length, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, this.read, 0, 16 * this.steps.length);
  }

  /** Adds this forward's durations (after its submit). */
  async collect(): Promise<void> {
    await this.read.mapAsync(MAP_READ);
    const t = new BigUint64Array(this.read.getMappedRange().slice(0));
    this.read.unmap();
    for (let i = 0; i < this.steps.length; i++) {
      const d = Number(t[2 * i + 1] - t[2 * i]);
      // A timestamp pair the implementation could not order reads as 0, never as negative time.
      this.ns[i] += Math.max(0, d);
      this.calls[i]++;
    }
  }

  report(): StepProfile[] {
    return this.steps.map((s, i) => ({ label: s.label, kernel: s.kernel, ns: this.ns[i], calls: this.calls[i] }));
  }

  reset(): void { this.ns.fill(0); this.calls.fill(0); }

  destroy(): void { this.querySet.destroy(); this.resolve.destroy(); this.read.destroy(); }
}
