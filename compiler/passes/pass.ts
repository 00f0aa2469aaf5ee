// A pass is a named, pure Graph -> Graph function. `fuses` is the name users give
// to `--no-fuse` to switch it off, so benchmarks can measure what each pass buys.
import type { Graph } from '../ir/graph.ts';

export interface Pass {
  readonly name: string;
  /** The key for `--no-fuse` (e.g. 'norm'). */
  readonly fuses: string;
  readonly summary: string;
  run(g: Graph): Graph;
}
