// Routing statistics of mixture-of-experts layers: per layer and expert, how many
// tokens were routed there since the engine was created, and the imbalance (the
// busiest expert's count over the mean count; 1 is perfectly even, E/k the worst
// possible with k distinct experts per token). Engines feed it the routing values
// ([T, k, 2] as (weight, expert) pairs, see compiler/ir/moe.ts) of every forward.

export interface MoeLayerShape { readonly experts: number; readonly k: number }

export interface MoeLayerStats {
  readonly layer: number;
  readonly experts: number;
  readonly top_k: number;
  /** Tokens routed to each expert (a token counts once in each of its k experts). */
  readonly counts: number[];
  /** max(counts) / mean(counts); 0 before any token. */
  readonly imbalance: number;
}

export interface MoeStatsReport {
  /** Tokens that went through the MoE layers (each layer sees every token once). */
  readonly tokens: number;
  readonly layers: MoeLayerStats[];
}

export class MoeStats {
  private readonly counts: number[][];
  private tokens = 0;

  constructor(readonly shapes: readonly MoeLayerShape[]) {
    this.counts = shapes.map((s) => new Array<number>(s.experts).fill(0));
  }

  /** Adds one forward's routing of `T` tokens for every MoE layer, in layer order. */
  add(routings: readonly ArrayLike<number>[], T: number): void {
    if (routings.length !== this.shapes.length) throw new Error(`expected routings of ${this.shapes.length} MoE layers, got ${routings.length}`);
    routings.forEach((r, l) => {
      const { experts, k } = this.shapes[l];
      for (let s = 0; s < T * k; s++) {
        const e = r[s * 2 + 1];
        if (!(Number.isInteger(e) && e >= 0 && e < experts)) throw new Error(`layer ${l}: routing names expert ${e}, outside 0..${experts - 1}`);
        this.counts[l][e]++;
      }
    });
    this.tokens += T;
  }

  report(): MoeStatsReport {
    return {
      tokens: this.tokens,
      layers: this.counts.map((c, layer) => {
        const total = c.reduce((a, b) => a + b, 0);
        return { layer, experts: c.length, top_k: this.shapes[layer].k, counts: [...c], imbalance: total ? Math.max(...c) / (total / c.length) : 0 };
      }),
    };
  }
}

/** A small table for people (stderr): one row per layer, counts per expert, imbalance. */
export function formatMoeStats(r: MoeStatsReport): string {
  if (!r.layers.length) return '';
  const w = Math.max(3, ...r.layers.flatMap((l) => l.counts.map((c) => String(c).length)));
  const E = Math.max(...r.layers.map((l) => l.experts));
  const head = `  moe routing: tokens per expert (${r.tokens} tokens, top-${r.layers[0].top_k})\n`
    + `  layer  ${Array.from({ length: E }, (_, e) => `e${e}`.padStart(w)).join(' ')}  max/mean\n`;
  const rows = r.layers.map((l) => `  ${String(l.layer).padStart(5)}  ${l.counts.map((c) => String(c).padStart(w)).join(' ')}${' '.repeat((w + 1) * (E - l.experts))}  ${l.imbalance.toFixed(2)}`);
  return head + rows.join('\n') + '\n';
}
