// Per-dispatch GPU time from timestamp queries: when a submission is timed, each dispatch
// runs in its own compute pass that writes a timestamp at its start and end. Splitting the
// pass adds a little overhead of its own, so profile runs say where time goes, not how fast a
// normal forward is (bench/profile.ts reports both). Needs the 'timestamp-query' feature,
// which createGpuDevice asks for whenever the adapter has it.
import { DeviceError } from '../runner/device.ts';

const QUERY_RESOLVE = 0x0200, COPY_SRC = 0x0004, COPY_DST = 0x0008, MAP_READ = 0x1;

export class DispatchTimer {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private readonly read: GPUBuffer;

  constructor(device: GPUDevice, readonly capacity: number) {
    if (!device.features.has('timestamp-query')) {
      throw new DeviceError("profiling needs the adapter's 'timestamp-query' feature, which this device lacks");
    }
    const n = 2 * capacity;
    this.querySet = device.createQuerySet({ type: 'timestamp', count: n });
    this.resolve = device.createBuffer({ size: n * 8, usage: QUERY_RESOLVE | COPY_SRC });
    this.read = device.createBuffer({ size: n * 8, usage: MAP_READ | COPY_DST });
  }

  /** The compute pass for dispatch i, with timestamps at its start and end. */
  pass(enc: GPUCommandEncoder, i: number): GPUComputePassEncoder {
    return enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /** Encodes the copy of this submission's timestamps; call after the last pass. */
  finish(enc: GPUCommandEncoder, dispatches: number): void {
    enc.resolveQuerySet(this.querySet, 0, 2 * dispatches, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, this.read, 0, 16 * dispatches);
  }

  /** Nanoseconds per dispatch (after the submit). */
  async collect(dispatches: number): Promise<Float64Array> {
    await this.read.mapAsync(MAP_READ, 0, 16 * dispatches);
    const t = new BigUint64Array(this.read.getMappedRange(0, 16 * dispatches).slice(0));
    this.read.unmap();
    // A timestamp pair the implementation could not order reads as 0, never as negative time.
    return Float64Array.from({ length: dispatches }, (_, i) => Math.max(0, Number(t[2 * i + 1] - t[2 * i])));
  }

  destroy(): void { this.querySet.destroy(); this.resolve.destroy(); this.read.destroy(); }
}
