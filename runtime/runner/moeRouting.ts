// Routing readback for MoE statistics: after a forward, the routing values of every
// moe_route dispatch ([T, k, 2] floats per layer: tiny) are read back with the logits and
// counted per expert. Opt-in (moeStats: true) so benchmarks measure the plain forward.
import type { Program } from '../../program/program.ts';
import { MoeStats } from '../moeStats.ts';
import type { DeviceBuffer, DeviceReadback } from './device.ts';

export class MoeRouting {
  readonly stats: MoeStats;

  private constructor(private readonly layers: readonly { buffer: string; k: number }[], experts: number[]) {
    this.stats = new MoeStats(layers.map((l, i) => ({ experts: experts[i], k: l.k })));
  }

  /** One entry per moe_route dispatch of the program (in layer order); null when it has none. */
  static forProgram(program: Program): MoeRouting | null {
    const specs = new Map(program.kernels.map((k) => [k.key, k.spec]));
    const layers: { buffer: string; k: number }[] = [];
    const experts: number[] = [];
    for (const s of program.steps) {
      const spec = specs.get(s.kernel);
      if (spec?.kind !== 'moe_route') continue;
      layers.push({ buffer: s.args.out, k: spec.k });
      experts.push(spec.experts);
    }
    return layers.length ? new MoeRouting(layers, experts) : null;
  }

  /** The readbacks of this step's routings (T tokens). */
  readbacks(T: number, buffer: (name: string) => DeviceBuffer): DeviceReadback[] {
    return this.layers.map((l) => ({ buffer: buffer(l.buffer), offset: 0, bytes: T * l.k * 2 * 4 }));
  }

  /** Counts the routings read back by `readbacks`. */
  add(data: readonly Uint8Array[], T: number): void {
    this.stats.add(data.map((d) => new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4)), T);
  }
}
