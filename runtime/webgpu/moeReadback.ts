// Reads the routing of every MoE layer back after a forward, for routing statistics.
// The routing buffers are tiny ([T, k, 2] floats per layer), so one copy into a
// staging buffer, encoded in the forward's own command buffer, costs little; it is
// still opt-in (WebGpuEngineOptions.moeStats) so benchmarks measure the plain forward.
import type { Program } from '../../program/program.ts';
import { MoeStats } from '../moeStats.ts';
import { USAGE, MAP_READ } from './setup.ts';

export class MoeReadback {
  readonly stats: MoeStats;
  private readonly staging: GPUBuffer;

  private constructor(device: GPUDevice, private readonly layers: readonly { buffer: string; k: number; offset: number }[], bytes: number, experts: number[]) {
    this.stats = new MoeStats(layers.map((l, i) => ({ experts: experts[i], k: l.k })));
    this.staging = device.createBuffer({ label: 'moe-routing-readback', size: Math.max(4, bytes), usage: USAGE.MAP_READ | USAGE.COPY_DST });
  }

  /** One entry per moe_route dispatch of the program (in layer order); null when it has none. */
  static forProgram(device: GPUDevice, program: Program, maxTokens: number): MoeReadback | null {
    const specs = new Map(program.kernels.map((k) => [k.key, k.spec]));
    const layers: { buffer: string; k: number; offset: number }[] = [];
    const experts: number[] = [];
    let offset = 0;
    for (const s of program.steps) {
      const spec = specs.get(s.kernel);
      if (spec?.kind !== 'moe_route') continue;
      layers.push({ buffer: s.args.out, k: spec.k, offset });
      experts.push(spec.experts);
      offset += maxTokens * spec.k * 2 * 4;
    }
    return layers.length ? new MoeReadback(device, layers, offset, experts) : null;
  }

  /** Copies this step's routings (T tokens) into the staging buffer. */
  encode(enc: GPUCommandEncoder, T: number, buffer: (name: string) => GPUBuffer): void {
    for (const l of this.layers) enc.copyBufferToBuffer(buffer(l.buffer), 0, this.staging, l.offset, T * l.k * 2 * 4);
  }

  /** After the submit: maps the staging buffer and adds the routings to the counts. */
  async collect(T: number): Promise<void> {
    await this.staging.mapAsync(MAP_READ);
    const all = new Float32Array(this.staging.getMappedRange().slice(0));
    this.staging.unmap();
    this.stats.add(this.layers.map((l) => all.subarray(l.offset / 4, l.offset / 4 + T * l.k * 2)), T);
  }

  destroy(): void { this.staging.destroy(); }
}
